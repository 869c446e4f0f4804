# SPDX-License-Identifier: LGPL-2.1-or-later
"""The demo fixture: a real Debian 6.12 guest's makedumpfile'd memory with the
test module loaded (fixtures/demo, made by ``python -m tests.lab demo``).

Not a lab test: it runs on any machine, with no vmlinux, no root and no
download -- which is the point of the fixture (issue #6). The lab tier
checks the same things live and on fresh dumps of both kernels."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kcoretool.api import open_kernel
from kcoretool.cli import cli
from kcoretool.kernel.globals import GLOBALS
from tests.module_areas import KIND, check_area_pages

DEMO = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "demo"
CORE = DEMO / "demo-6.12.kdump"
MODULE = json.loads((DEMO / "demo-6.12.module.json").read_text())
RELEASE = "6.12.117+deb12-amd64"


@pytest.fixture(scope="module")
def kernel():
    k = open_kernel(str(CORE), None, debuginfo="btf")
    yield k
    k.core.close()


def btf_cli(*args: str):
    return CliRunner().invoke(cli, ["-c", str(CORE), "--debuginfo", "btf", *args], catch_exceptions=False)


def test_readme_main_command_reproduces_vmallocinfo() -> None:
    """The README's first command, as a user runs it (a fresh process, auto
    debug info), prints the guest's /proc/vmallocinfo byte for byte."""
    cp = subprocess.run([sys.executable, "-m", "kcoretool", "-c", str(CORE), "vmalloc", "list",
                         "--format", "vmallocinfo"], capture_output=True, timeout=120)
    assert cp.returncode == 0, cp.stderr.decode()
    assert cp.stdout == (DEMO / "demo-6.12.vmallocinfo").read_bytes()


def test_info_says_btf_from_kernel_memory() -> None:
    r = btf_cli("--json", "info")
    assert r.exit_code == 0
    info = json.loads(r.output)
    assert info["release"] == RELEASE
    assert info["debuginfo"] == {"mode": "btf", "kind": "btf", "source": "kernel memory",
                                 "reason": "--debuginfo btf"}


def test_module_areas_have_their_kinds(kernel) -> None:
    m = kernel.vmalloc()
    for t in MODULE["areas"]:
        if t["kind"] in KIND:
            a = m.find(t["addr"], include_lazy=False)
            assert (a.start, a.kind) == (t["addr"], KIND[t["kind"]]), t["name"]
            if a.vm is not None:
                assert a.vm.caller_symbol.startswith(t["caller"] + "+"), t["name"]
                assert a.vm.caller_symbol.endswith("[kcoretool_test]"), t["name"]
        elif t["kind"] == "lazy_freed":
            assert m.find(t["addr"], include_lazy=False) is None
            assert [x.start for x in m.lazy if x.start == t["addr"]] == [t["addr"]]
    huge = next(t for t in MODULE["areas"] if t["kind"] == "vmalloc_huge")
    assert m.find(huge["addr"]).vm.page_order == 9


def test_every_module_page_reads_its_own_tag(kernel) -> None:
    problems = []
    for area in MODULE["areas"]:
        data, report = kernel.read(area["addr"], area["size"])
        problems += check_area_pages(area, data, report)
    assert problems == []


def test_block_pieces_in_their_block(kernel) -> None:
    """Live pieces' pages are the block's used_map; the freed one's are dirty
    (vb_alloc() hands out 1 << get_order(n) pages: a 3-page piece takes 4)."""
    pieces = [t for t in MODULE["areas"] if t["kind"] == "vm_map_ram_piece"]
    (block,) = [b for b in kernel.vmalloc().blocks if b.start == pieces[0]["block_start"]]
    units = {t["name"]: range(t["block_offset_pages"], t["block_offset_pages"] + (1 << (t["nr_pages"] - 1).bit_length()))
             for t in pieces}
    used = {p for x, y in block.used for p in range(x, y)}
    assert used == {p for t in pieces if t["live"] for p in units[t["name"]]}
    assert block.dirty == sum(len(units[t["name"]]) for t in pieces if not t["live"])
    assert (block.used_source, block.cpu_source) == ("used_map", "vmap_block.cpu")


def test_module_btf_is_loaded_on_demand(kernel) -> None:
    """A type only the test module defines comes from its split BTF (kept by
    kernel/bpf/btf.c on the btf_modules list)."""
    prog = kernel.prog
    assert prog.cache["kcoretool_btf"].modules_btf == []
    t = prog.type("struct kct_area")
    assert prog.cache["kcoretool_btf"].modules_btf == [
        "kcoretool_test", "qemu_fw_cfg", "9p", "9pnet_virtio", "9pnet", "netfs"]
    assert [m.name for m in t.members][:3] == ["id", "name", "kind"]
    # A module type refers to vmlinux types by their vmlinux ids.
    fids = prog.type("struct p9_client").member("fids").type
    assert (str(fids.type_name()), fids.size, [m.name for m in fids.members]) == (
        "struct idr", 24, ["idr_rt", "idr_base", "idr_next"])


def test_module_enumerators_only_for_constants() -> None:
    """prog.constant() finds a module's enumerator (9pnet's enum p9_msg_t);
    a missing prog[name] does not read every module's BTF to say so."""
    from kcoretool.api import open_kernel

    k = open_kernel(str(CORE))
    try:
        with pytest.raises(KeyError):
            k.prog["no_such_global"]
        assert k.prog.cache["kcoretool_btf"].modules_btf == []
        c = k.prog.constant("P9_TVERSION")
        assert (c.type_.type_name(), c.value_()) == ("enum p9_msg_t", 100)
        assert "9pnet" in k.prog.cache["kcoretool_btf"].modules_btf
    finally:
        k.core.close()


def test_dwarf_requested_without_vmlinux() -> None:
    cp = subprocess.run([sys.executable, "-m", "kcoretool", "-c", str(CORE), "--debuginfo", "dwarf", "vmalloc",
                         "stats"], capture_output=True, text=True, timeout=120)
    assert (cp.returncode, cp.stdout) == (1, "")
    assert cp.stderr == (
        f"kcoretool: no debug info for Linux {RELEASE}; install linux-image-{RELEASE}-dbg "
        f"(Debian/Ubuntu) or kernel-debuginfo-{RELEASE} (Fedora/RHEL), or pass --vmlinux\n")


def _globals_read_by_kcoretool() -> set:
    """Every ``prog["name"]`` / ``has_symbol(prog, "name")`` in the package."""
    names = set()
    for path in (pathlib.Path(__file__).resolve().parent.parent / "kcoretool").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Subscript) and isinstance(node.value, (ast.Name, ast.Attribute))
                    and getattr(node.value, "id", getattr(node.value, "attr", None)) == "prog"
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
                names.add(node.slice.value)
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "has_symbol"
                    and isinstance(node.args[1], ast.Constant)):
                names.add(node.args[1].value)
    return names


def test_every_global_kcoretool_reads_has_a_type_without_dwarf(kernel) -> None:
    """Names read through prog[...] resolve under BTF: drgn's own constants,
    a BTF variable or function, or the GLOBALS table."""
    prog = kernel.prog
    drgn_builtin = {"UTS_RELEASE", "PAGE_SIZE", "VMCOREINFO"}
    missing = []
    for name in sorted(_globals_read_by_kcoretool() - drgn_builtin):
        if name in GLOBALS:
            continue
        try:
            prog[name]
        except KeyError:
            missing.append(name)
    # Layout probes for other kernels (vmap_block_tree, ...) are in GLOBALS too.
    assert missing == []
    assert {"vmap_area_list", "vmap_nodes", "free_vmap_area_list", "node_data"} <= _globals_read_by_kcoretool()
