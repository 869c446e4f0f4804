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


def test_plain_drgn_unwinds_every_task_with_the_kernels_orc() -> None:
    """drgn's own unwinder, fed the kernel's address range: every task's
    stack runs to where the kernel's stacks start (the demo dump has no
    vmlinux; the lab compares each frame with DWARF's, tests/lab/test_drgn_helpers.py)."""
    code = textwrap.dedent("""
        import collections
        from drgn.helpers.linux.pid import for_each_task
        tasks = list(for_each_task(prog))
        kernel = [[f for f in prog.stack_trace(t) if f.pc >= 0xffff800000000000] for t in tasks]
        print(len(tasks), sum(map(len, kernel)), sum(1 for k in kernel if all(f.name for f in k)))
        print(sorted(collections.Counter(k[-1].name for k in kernel).items()))
        print(" ".join(f.name for f in kernel[[t.pid.value_() for t in tasks].index(1)]))
    """)
    cp = subprocess.run([sys.executable, "-m", "drgn", "-q", "-c", str(CORE), "-e", code], capture_output=True,
                        text=True, timeout=180, cwd=REPO, env={**os.environ, "DRGN_DISABLE_PLUGINS": ""})
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == [
        "59 363 59",
        "[('entry_SYSCALL_64_after_hwframe', 1), ('ret_from_fork_asm', 58)]",
        "__schedule schedule do_nanosleep hrtimer_nanosleep common_nsleep_timens __x64_sys_clock_nanosleep "
        "do_syscall_64 entry_SYSCALL_64_after_hwframe",
    ]


def test_plain_drgn_types_the_globals_its_helpers_read() -> None:
    """Globals BTF has no VAR for (kcoretool.kernel.globals), as drgn's
    helpers read them; the lab checks each against DWARF."""
    code = textwrap.dedent("""
        from drgn.helpers.linux.net import for_each_net
        from drgn.helpers.linux.pid import for_each_task
        from drgn.helpers.linux.printk import get_dmesg
        from drgn.helpers.linux.sched import task_state_to_char
        print("".join(sorted(task_state_to_char(t) for t in for_each_task(prog))))
        print(prog["init_uts_ns"].name.release.string_().decode(), len(list(for_each_net(prog))))
        print(get_dmesg(prog).decode().splitlines()[-1])
        print(prog["linux_banner"].string_().decode().split(" (")[0], prog["nr_threads"].value_())
        for name in ("prb", "task_state_array", "taint_flags", "timer_bases", "tk_core", "cpu_bit_bitmap",
                     "nr_swapper_spaces", "softirq_vec", "vm_node_stat", "panic_cpu"):
            print(name, prog[name].type_.type_name())
    """)
    cp = subprocess.run([sys.executable, "-m", "drgn", "-q", "-c", str(CORE), "-e", code], capture_output=True,
                        text=True, timeout=180, cwd=REPO, env={**os.environ, "DRGN_DISABLE_PLUGINS": ""})
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == [
        "I" * 38 + "S" * 21,
        "6.12.117+deb12-amd64 1",
        "[    6.773921] kcoretool_test: 13 areas, vmap block size 1048576",
        "Linux version 6.12.117+deb12-amd64 59",
        "prb struct printk_ringbuffer *",
        "task_state_array const char * const [9]",
        "taint_flags const struct taint_flag [19]",
        "timer_bases struct timer_base [3]",
        "tk_core struct <anonymous>",
        "cpu_bit_bitmap const unsigned long [65][128]",
        "nr_swapper_spaces unsigned int [27]",
        "softirq_vec struct softirq_action [10]",
        "vm_node_stat atomic_long_t [47]",
        "panic_cpu atomic_t",
    ]


@needs_commands
def test_plain_drgn_crash_commands() -> None:
    """drgn's %crash commands that read globals BTF does not type."""
    code = textwrap.dedent("""
        from drgn.commands import run_command
        for cmd in ("ps", "log", "sys", "mod", "kmem -v", "foreach bt"):
            print("==", cmd)
            run_command(prog, "crash " + cmd)
    """)
    cp = subprocess.run([sys.executable, "-m", "drgn", "-q", "-c", str(CORE), "-e", code], capture_output=True,
                        text=True, timeout=300, cwd=REPO, env={**os.environ, "DRGN_DISABLE_PLUGINS": ""})
    assert cp.returncode == 0, cp.stderr
    parts = dict(p.split("\n", 1) for p in cp.stdout.split("== ")[1:])
    assert {cmd: len(out.splitlines()) for cmd, out in parts.items()} == {
        "ps": 62, "log": 375, "sys": 12, "mod": 7, "kmem -v": 126, "foreach bt": 522}
    assert "RELEASE: 6.12.117+deb12-amd64" in parts["sys"] and "TASKS: 61" in parts["sys"]
    assert "kcoretool_test" in parts["mod"]
    assert parts["foreach bt"].count("ret_from_fork_asm") == 58


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


def test_drgn_command_help_offers_no_core(kernel, capsys) -> None:
    """Inside drgn the session's program is the core: ``%kcoretool --help``
    neither lists -c/--vmlinux nor shows them in its example; the console
    command's help still does."""
    from click.testing import CliRunner

    from kcoretool.cli import cli, run_in_program

    assert run_in_program(kernel.prog, ["--help"]) == 0
    out = capsys.readouterr().out
    assert "--vmlinux" not in out and "-c" not in out.split() and "/var/crash" not in out, out
    assert out.rstrip().endswith("Example: %kcoretool vmalloc list --kind vmalloc (the session's dump and types)")
    console = CliRunner().invoke(cli, ["--help"]).output
    assert "--vmlinux" in console and "Example: kcoretool -c /var/crash/vmcore vmalloc list" in console


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


# -- drgn's values and drgn's shape (issue 25) ----------------------------------------


def test_api_takes_drgn_objects(kernel) -> None:
    """Addresses and pids as drgn hands them out: anything with __index__,
    a struct task_struct * where a task is meant."""
    from drgn.helpers.linux.pid import find_task

    prog = kernel.prog
    m = kernel.vmalloc()
    va = m.find(0xff4222ae40010010).object(prog)
    assert kernel.whatis(va.va_start).kinds() == ["vmalloc", "task stack"]
    assert kernel.read(va.va_start, 16) == kernel.read(0xff4222ae40010000, 16)
    assert m.find(va.va_start + 0x10).start == 0xff4222ae40010000
    assert m.find(prog["init_task"].address_of_()) is None  # not in vmalloc space
    task = find_task(prog, 1)
    assert kernel.vmas(task).maps_text() == kernel.vmas(1).maps_text()
    assert kernel.tasks().find(task).comm == "python"


def test_model_objects_default_to_drgns_program(kernel) -> None:
    """``record.object()`` with no program: drgn's default program, which
    drgn's CLI (or the script) sets -- never a Kernel: with two dumps open,
    the second one's records would otherwise answer from the first."""
    import drgn

    cp = run_py(f'''
        import drgn, kcoretool
        a = kcoretool.open_kernel({str(CORE)!r})
        b = kcoretool.open_kernel({str(CORE)!r})
        try:
            drgn.get_default_prog()
        except drgn.NoDefaultProgramError:
            print("no default program")
        try:
            b.vmalloc().areas[0].object()
        except kcoretool.ArgumentError as e:
            print(e)
        print(b.vmalloc().areas[0].object(b.prog).prog_ is b.prog)
        drgn.set_default_prog(a.prog)
        print(hex(a.vmalloc().areas[0].object().va_start))
    ''')
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == ("no default program\nvmap area.object(): pass prog (the drgn.Program this model came "
                         "from), or set drgn's default program (drgn.set_default_prog)\nTrue\n0xff4222ae40000000\n")
    drgn.set_default_prog(kernel.prog)  # as drgn's CLI does
    try:
        m = kernel.vmalloc()
        a = m.find(0xff4222ae40010010)
        assert a.object().va_start.value_() == a.start
        assert a.vm.object().nr_pages.value_() == a.vm.nr_pages
        assert m.blocks[0].object().va.va_start.value_() == m.blocks[0].start
        t = kernel.tasks().find(1)
        assert t.object().comm.string_() == b"python" and t.mm.object().map_count.value_() == t.mm.map_count
        v = kernel.vmas(1).vmas[0]
        assert v.object().vm_start.value_() == v.start
        region = next(r for r in kernel.exec_memory().regions if r.area is not None)
        assert region.object().type_.type_name() == "struct vmap_area *"
        pack = kernel.exec_memory().packs[0]
        assert pack.object().type_.type_name() == "struct bpf_prog_pack *"
    finally:
        drgn.set_default_prog(None)


def test_one_exception_family_for_wrong_arguments(kernel) -> None:
    import drgn

    m = kernel.vmalloc()
    cases = [
        (lambda: list(m.select(min_size="4K")), r"^min_size='4K': not a number of bytes"),
        (lambda: kcoretool.diff(m, kernel), r"^a=VmallocModel: diff\(\) compares Kernels or VmallocSnapshots"),
        (lambda: kcoretool.from_program(None), r"^prog=NoneType: from_program\(\) takes a drgn.Program$"),
        (lambda: m.areas[0].object(drgn.Program()), r"^prog has no type 'struct vmap_area \*': pass the drgn"),
        (lambda: m.find(-1), r"^addr=-0x1: not a 64-bit address$"),
        (lambda: kernel.whatis(-1), r"^addr=-0x1: not a 64-bit address$"),
        (lambda: kernel.whatis(1.5), r"^addr=1.5: not an address"),
        (lambda: kernel.vmas("1"), r"^pid='1': not a pid or a struct task_struct \*"),
        (lambda: kernel.read(-1, 1), r"^addr=-0x1: not a 64-bit address$"),
    ]
    for call, message in cases:
        with pytest.raises(ArgumentError, match=message):
            call()


def test_one_kernel_per_program_and_close() -> None:
    closed = []
    with open_kernel(str(CORE)) as k:
        assert kcoretool.from_program(k.prog) is k
        assert k.vmalloc() is kcoretool.from_program(k.prog).vmalloc()
        k.core.close = lambda: closed.append(True)  # type: ignore[method-assign]
    assert closed == [True]


def test_helpers_in_drgns_shape(kernel) -> None:
    """kcoretool.helpers: program first, records whose object() is the struct."""
    import drgn
    from drgn.helpers.linux.pid import find_task

    from kcoretool import helpers

    prog = kernel.prog
    drgn.set_default_prog(prog)  # object() without a program, as in drgn's CLI
    assert helpers.kernel(prog) is kernel
    areas = list(helpers.for_each_vmalloc_area(prog, kinds=["vm_map_ram"]))
    assert len(areas) == 1 and areas[0].object().va_start.value_() == areas[0].start
    assert helpers.vmalloc_model(prog) is kernel.vmalloc()
    va = areas[0].object()
    data, report = helpers.read_with_provenance(prog, va.va_start, 4096)
    assert (data, report.pages_by_state()) == (kernel.read(areas[0].start, 4096)[0], report.pages_by_state())
    assert helpers.whatis(prog, va.va_start).kinds() == kernel.whatis(areas[0].start).kinds()
    texts = list(helpers.for_each_exec_region(prog, kinds=["module-text"]))
    assert sorted(r.owner for r in texts) == ["9p", "9pnet", "9pnet_virtio", "kcoretool_test", "netfs", "qemu_fw_cfg"]
    assert [p.address for p in helpers.for_each_bpf_prog_pack(prog)] == [p.address for p in kernel.exec_memory().packs]
    vmas = list(helpers.for_each_task_vma(find_task(prog, 1)))
    assert [v.start for v in vmas] == [v.start for v in kernel.vmas(1).vmas]
    with pytest.raises(ArgumentError, match=r"^task=int: give a struct task_struct \*"):
        list(helpers.for_each_task_vma(1))
