# SPDX-License-Identifier: LGPL-2.1-or-later
"""kcoretool inside drgn (issue 15), on the demo fixture -- a real 6.12
guest's kdump with no vmlinux: ``from_program`` on a bare drgn Program,
the drgn plugin (BTF and kallsyms for plain drgn, the ``kcoretool``
command), the typed API and its argument checks, the drgn floor.

drgn loads its plugins once per process, so everything that depends on
which plugins are loaded runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
from typing import Dict, Optional

import pytest
from click.testing import CliRunner

import kcoretool
from kcoretool.api import ArgumentError, DebugInfoError, open_kernel
from kcoretool.cli import cli
from kcoretool.errors import AddressError, CoreFormatError, KcoreToolError

REPO = pathlib.Path(__file__).resolve().parent.parent
CORE = REPO / "fixtures" / "demo" / "demo-6.12.kdump"
SYNTH = REPO / "fixtures" / "vmcore-6.1.core"


try:
    import drgn.commands  # noqa: F401  (drgn 0.3.0+)

    HAS_COMMANDS = True
except ImportError:
    HAS_COMMANDS = False
needs_commands = pytest.mark.skipif(not HAS_COMMANDS, reason="drgn before 0.3.0 has no command framework")


def run_py(code: str, env: Optional[Dict[str, str]] = None, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})


def cli_out(*args: str) -> str:
    r = CliRunner().invoke(cli, ["-c", str(CORE), *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def kernel():
    k = open_kernel(str(CORE))
    yield k
    k.core.close()


# -- from_program -------------------------------------------------------------------


@pytest.mark.parametrize("plugins", ["on", "off"])
def test_bare_program_gives_open_kernel_output(plugins: str, kernel) -> None:
    """A bare Program + from_program: the same areas, module callers named,
    whether the plugin or from_program itself loads the BTF."""
    cp = run_py(f"""
        import json, logging, drgn, kcoretool
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        prog = drgn.Program()
        prog.set_core_dump({str(CORE)!r})
        k = kcoretool.from_program(prog)
        print(json.dumps({{"debuginfo": k.debuginfo.to_dict(),
                          "areas": [a.to_dict() for a in k.vmalloc().select(include_lazy=True)]}}))
    """, env={"DRGN_DISABLE_PLUGINS": "kcoretool"} if plugins == "off" else None)
    assert cp.returncode == 0, cp.stderr
    got = json.loads(cp.stdout)
    want = [a.to_dict() for a in kernel.vmalloc().select(include_lazy=True)]
    assert got["areas"] == want
    assert any(a["caller_symbol"] and "[" in a["caller_symbol"] for a in got["areas"]), "module callers named"
    assert got["debuginfo"]["kind"] == "btf"
    assert got["debuginfo"]["source"].startswith("kernel memory at 0xffffffff")
    if plugins == "off":
        assert got["debuginfo"]["reason"] == "the drgn program had no kernel types"
        assert "kcoretool: kcoretool: loaded Linux 6.12.117+deb12-amd64's BTF" in cp.stderr
    else:
        assert got["debuginfo"]["reason"] == "loaded by kcoretool's drgn plugin"
        assert "kcoretool plugin: no DWARF for the kernel; types from its BTF" in cp.stderr


def test_from_program_refuses_what_is_not_a_kernel() -> None:
    import drgn

    prog = drgn.Program()
    with pytest.raises(CoreFormatError, match=r"^this drgn Program is not a Linux kernel \(set_kernel\(\)"):
        kcoretool.from_program(prog)


def test_from_program_without_btf_says_how_to_get_types() -> None:
    """A synthetic 6.1 vmcore: VMCOREINFO without the kallsyms symbols, so no BTF."""
    cp = run_py(f"""
        import drgn, kcoretool
        prog = drgn.Program(); prog.set_core_dump({str(SYNTH)!r})
        try:
            kcoretool.from_program(prog)
        except kcoretool.DebugInfoError as e:
            print(e)
    """, env={"DRGN_DISABLE_PLUGINS": "kcoretool"})
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("this drgn Program has no types for Linux ")
    assert "load its DWARF first (prog.load_debug_info(main=True), or drgn -s VMLINUX)" in cp.stdout


def test_from_program_keeps_one_kernel_per_dump(kernel) -> None:
    assert kcoretool.from_program(kernel.prog) is kcoretool.from_program(kernel.prog)


# -- the plugin: plain drgn ---------------------------------------------------------


def test_plain_drgn_uses_btf_and_kallsyms() -> None:
    """``drgn -c DEMO -e``: drgn's own helpers with no debug info package."""
    code = textwrap.dedent("""
        from drgn.helpers.linux.pid import for_each_task
        from drgn.helpers.linux.mm import for_each_vmap_area
        tasks = list(for_each_task(prog))
        print(len(tasks), sum(1 for _ in for_each_vmap_area(prog)), prog["jiffies"].value_())
        print(prog["init_task"].comm.string_().decode())
        t = next(t for t in tasks if t.pid == 1)
        print(prog.stack_trace(t)[0].name)
    """)
    cp = subprocess.run([sys.executable, "-m", "drgn", "-q", "-c", str(CORE), "-e", code], capture_output=True,
                        text=True, timeout=180, cwd=REPO)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == ["59 125 4294894301", "swapper/0", "__schedule"]


def test_plugin_is_turned_off_by_drgns_switch() -> None:
    cp = subprocess.run([sys.executable, "-m", "drgn", "-q", "-c", str(CORE), "-e", "prog['jiffies']"],
                        capture_output=True, text=True, timeout=180, cwd=REPO,
                        env={**os.environ, "DRGN_DISABLE_PLUGINS": "kcoretool"})
    assert cp.returncode == 1
    assert "could not find 'jiffies'" in cp.stderr


# -- the kcoretool drgn command -------------------------------------------------------


@needs_commands
@pytest.mark.parametrize("command", [["vmalloc", "stats"], ["vmalloc", "list", "--caller", "kct_*"],
                                     ["--json", "whatis", "0xff4222ae40010010"], ["exec", "list"]])
def test_drgn_command_prints_what_the_cli_prints(command) -> None:
    cp = run_py(f"""
        import drgn
        from drgn.commands import run_command
        prog = drgn.Program(); prog.set_core_dump({str(CORE)!r})
        run_command(prog, "kcoretool " + {" ".join(repr(c) if "*" in c else c for c in command)!r})
    """)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == cli_out(*command)


@needs_commands
def test_drgn_command_failure_is_one_line_and_raises() -> None:
    cp = run_py(f"""
        import drgn
        from drgn.commands import CommandExitStatusError, run_command
        prog = drgn.Program(); prog.set_core_dump({str(CORE)!r})
        try:
            run_command(prog, "kcoretool whatis 0x1z")
        except CommandExitStatusError as e:
            print("status", e.exit_status)
    """)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "status 1\n"
    assert cp.stderr == "kcoretool: '0x1z' is not an address; use 0xffff..., a decimal number or SYMBOL+OFF\n"


def test_drgn_command_refuses_debug_info_options(kernel) -> None:
    from kcoretool.cli import run_in_program

    assert run_in_program(kernel.prog, ["--vmlinux", "/x", "vmalloc", "stats"]) == 2


# -- the typed API ------------------------------------------------------------------


def test_whatis_is_typed_and_prints_as_the_cli(kernel) -> None:
    res = kernel.whatis(0xff4222ae40010010)
    assert isinstance(res, kcoretool.WhatIs)
    assert res.kinds() == ["vmalloc", "task stack"]
    assert res.area is not None and res.area.start == 0xff4222ae40010000
    assert res.what[0].offset == 0x10
    assert str(res) + "\n" == cli_out("whatis", "0xff4222ae40010010")
    assert json.loads(cli_out("--json", "whatis", "0xff4222ae40010010")) == res.to_dict()


def test_model_objects_hand_out_drgn_objects(kernel) -> None:
    m = kernel.vmalloc()
    a = m.find(0xff4222ae40010010)
    va = a.object(kernel.prog)
    assert va.type_.type_name() == "struct vmap_area *"
    assert va.va_start.value_() == a.start and va.va_end.value_() == a.end
    vm = a.vm.object(kernel.prog)
    assert vm.type_.type_name() == "struct vm_struct *" and vm.nr_pages.value_() == a.vm.nr_pages
    b = m.blocks[0].object(kernel.prog)
    assert b.type_.type_name() == "struct vmap_block *" and b.va.va_start.value_() == m.blocks[0].start


def test_select_checks_its_arguments(kernel) -> None:
    m = kernel.vmalloc()
    with pytest.raises(ArgumentError, match=r"^kinds='vm_map_ram': give a list of kinds, e.g. \['vm_map_ram'\]$"):
        list(m.select(kinds="vm_map_ram"))
    with pytest.raises(ArgumentError, match=r"^unknown kind 'vm_map_rm'; one of vmalloc, vmap, ioremap, "):
        list(m.select(kinds=["vm_map_rm"]))
    with pytest.raises(ArgumentError, match=r"^unknown kind 'bpf'; one of module-text, "):
        list(kernel.exec_memory().select(kinds=["bpf"]))
    assert len(list(m.select(kinds=["vm_map_ram"]))) == 1


def test_read_and_open_check_their_arguments(kernel) -> None:
    with pytest.raises(ArgumentError, match=r"^size -1: a read needs a length of 0 or more bytes$"):
        kernel.read(0xff4222ae40010000, -1)
    with pytest.raises(AddressError, match=r"^0xfffffffffffffff0\+0x20 runs past the top of the 64-bit"):
        kernel.read(0xfffffffffffffff0, 0x20)
    with pytest.raises(ArgumentError, match=r"^via='vread': unknown read path; one of auto, pagetable, kcore$"):
        kernel.read(0xff4222ae40010000, 8, via="vread")
    with pytest.raises(DebugInfoError, match=r"^debuginfo 'ctf': unknown; use auto, dwarf, btf$"):
        open_kernel(str(CORE), debuginfo="ctf")
    assert issubclass(ArgumentError, KcoreToolError) and issubclass(ArgumentError, ValueError)


def test_read_via_auto_is_the_clis(kernel) -> None:
    """auto reads what ``read --via auto`` reads: a kdump file has no
    virtual segments, so every kernel address goes through the page tables."""
    for va in (0xff4222ae40010000, int(kernel.prog["page_offset_base"]) + 0x100000):
        data, r = kernel.read(va, 0x1000, via="auto")
        assert r.via == "pagetable"
        cp = CliRunner().invoke(cli, ["-c", str(CORE), "read", hex(va), "0x1000", "-o", "-"])
        assert cp.exit_code == 0 and cp.stdout_bytes == data


def test_auto_reads_plain_segments_from_the_core() -> None:
    """A saved /proc/kcore: direct-map addresses are in its segments, so
    ``via="auto"`` reads them there (no drgn needed), byte for byte what
    ``read --via elf`` prints; an address in no segment needs the page tables."""
    from kcoretool.api import Kernel, needs_pagetables, open_core

    path = str(REPO / "fixtures" / "kcore-6.1.core")
    with open_core(path) as core:
        ram = next(s for s in core.segments if s.kind == "ram")
        assert not needs_pagetables(core, ram.vaddr)
        assert needs_pagetables(core, 0x1000)
        data, report = Kernel(None, core).read(ram.vaddr, 0x2000, via="auto")  # type: ignore[arg-type]
    assert report.via == "elf" and [(r.vaddr, r.size, r.state) for r in report.runs] == [(ram.vaddr, 0x2000, "data")]
    cp = CliRunner().invoke(cli, ["-c", path, "read", hex(ram.vaddr), "0x2000", "--via", "elf", "-o", "-"])
    assert cp.exit_code == 0 and cp.stdout_bytes == data


def test_dir_and_help_show_the_api() -> None:
    names = dir(kcoretool)
    for name in ("open_kernel", "from_program", "Kernel", "WhatIs", "KcoreToolError", "diff", "load_snapshot"):
        assert name in names
    assert "VmallocReader" in dir(kcoretool.reader)
    assert kcoretool.reader.VmallocReader.__name__ == "VmallocReader"
    assert "from_program" in kcoretool.__doc__
    import pydoc

    page = pydoc.render_doc(kcoretool, renderer=pydoc.plaintext)
    assert "class Kernel" in page and "from_program(prog" in page and "class WhatIs" in page
    assert (REPO / "kcoretool" / "py.typed").exists()


def test_old_drgn_gives_one_line(monkeypatch) -> None:
    import drgn

    from kcoretool._drgn_required import DrgnVersionError, require_drgn

    monkeypatch.setattr(drgn, "__version__", "0.0.33", raising=False)
    with pytest.raises(DrgnVersionError, match=r"^kcoretool needs drgn >= 0\.1\.0; this is drgn 0\.0\.33 "
                                                r"\(pip install -U 'drgn>=0\.1\.0'\)$"):
        require_drgn()


def test_api_errors_are_kcoretool_errors(kernel, monkeypatch) -> None:
    """What damaged input raises below kcoretool reaches an API caller as a
    KcoreToolError, the original as __cause__."""
    import drgn

    import kcoretool.model.build as build

    def fault(*args, **kwargs):
        raise drgn.FaultError("could not find memory segment", 0xffff888000001000)

    monkeypatch.setattr(build, "from_program", fault)
    with pytest.raises(kcoretool.KernelDataError, match=r"^cannot read kernel memory at 0xffff888000001000 "
                       r"\(could not find memory segment\): the core is damaged or lacks that page$") as e:
        kcoretool.Kernel(kernel.prog).vmalloc()
    assert isinstance(e.value.__cause__, drgn.FaultError)
