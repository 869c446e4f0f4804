"""Without a vmlinux: BTF + kallsyms give exactly the DWARF output on the real
kernels, live and on every dump format (issue #6).

tests/lab/in_guest/debuginfo.py runs each command under ``--debuginfo dwarf
--vmlinux V`` and ``--debuginfo btf`` in one process (on the host for the
dumps, inside the guest for /proc/kcore) and the test diffs the pairs."""

from __future__ import annotations

import copy
import difflib
import json
import subprocess
import sys
from typing import Any, Dict, List

import pytest

from tests.lab.config import SERIES_BY_NAME

DUMPS = ("elf", "kdump", "elf_filtered")


def commands(lab, live: bool) -> List[List[str]]:
    """Every model, whatis and reader face, on the test module's areas."""
    module = lab.snapshot.module
    by = {a["name"]: a for a in module["areas"]}

    def at(name: str, off: int = 0) -> str:
        return hex(by[name]["addr"] + off)

    cmds: List[List[str]] = [
        ["vmalloc", "list"],
        ["vmalloc", "list", "--format", "vmallocinfo"],
        ["--json", "vmalloc", "list"],
        ["vmalloc", "blocks"],
        ["--json", "vmalloc", "blocks"],
        ["vmalloc", "free"],
        ["--json", "vmalloc", "free"],
        ["vmalloc", "stats"],
        ["--json", "vmalloc", "stats"],
    ]
    # Live, the kernel may purge the lazy area between the DWARF and the BTF run.
    lazy = [] if live else ["lazy_8p"]
    huge = ["vmalloc_huge_4m"] if SERIES_BY_NAME[lab.kernel].expect.huge else []
    for name in ("vmalloc_3p", *huge, "vmap_5p", "ram_piece_2p", "ram_large_80p", *lazy, "ioremap_1p"):
        cmds += [["vmalloc", "show", at(name)], ["--json", "vmalloc", "show", at(name)]]
    direct = lab.snapshot.variables["page_offset_base"] + by["vmalloc_1p"]["pages"][0]["phys"]
    for addr in (at("vmalloc_16p", 0x1234), at("ram_piece_3p", 0x2008), at("ram_piece_freed_2p"),
                 *[at(n, 8) for n in lazy], at("ioremap_1p"), hex(direct + 0x10), "init_mm+0x10", SERIES_BY_NAME[lab.kernel].expect.vmalloc_fn + "+0x20",
                 hex(module["json_buffer"]["addr"])):
        cmds += [["whatis", addr], ["--json", "whatis", addr]]
    cmds += [
        ["vmalloc", "dump", at("vmalloc_37p"), "-o", "{OUT}"],
        ["--json", "vmalloc", "dump", at("ram_piece_2p"), "-o", "{OUT}"],
        ["--json", "vmalloc", "dump", at("ram_large_80p"), "--with-guard", "-o", "{OUT}"],
        *[["--json", "vmalloc", "dump", at(n), "-o", "{OUT}"] for n in lazy],
        # Live, other areas (task stacks) change between the two runs.
        ["vmalloc", "extract", "-o", "{OUT}", *(["--caller", "kct_make_*"] if live else [])],
        ["read", at("vmalloc_3p"), "0x3000", "--via", "pagetable", "-o", "{OUT}"],
    ]
    if live:
        cmds.append(["--json", "vmalloc", "check"])
    return cmds


def _steady(argv: List[str], out: str) -> str:
    """``vmalloc check`` also lists pages that changed between its two reads
    (live task and IRQ stacks): memory in flux, not the debug info's doing.
    The mismatches -- the kernel defects found -- must be identical."""
    if "check" not in argv or "--json" not in argv:
        return out
    d = json.loads(out)
    d.pop("changing_pages", None)
    d["results"] = [{k: v for k, v in r.items() if k != "changing"}
                    for r in d["results"] if r["mismatches"]]
    return json.dumps(d, indent=1)


def _verdict(report: Dict[str, Any]) -> None:
    for r in report["results"]:
        for side in ("dwarf", "btf"):
            r[side]["out"] = _steady(r["argv"], r[side]["out"])
    bad = [r for r in report["results"] if (r["dwarf"]["rc"], r["dwarf"]["out"]) != (r["btf"]["rc"], r["btf"]["out"])]
    for r in report["results"]:
        assert r["dwarf"]["rc"] in (0, 3), (f"{r['argv']} failed under DWARF: {r['dwarf']['err']}\n"
                                               f"stdout: {r['dwarf']['out'][-1000:]}")
    if bad:
        r = bad[0]
        diff = "\n".join(difflib.unified_diff(r["dwarf"]["out"].splitlines(), r["btf"]["out"].splitlines(),
                                              "dwarf", "btf", lineterm="", n=1))
        pytest.fail(f"{len(bad)} of {len(report['results'])} commands differ; first: {r['argv']} "
                    f"(rc {r['dwarf']['rc']} vs {r['btf']['rc']}, btf stderr {r['btf']['err']!r})\n{diff[:4000]}")


@pytest.mark.parametrize("dump", DUMPS)
def test_btf_output_is_dwarf_output_on_dumps(lab, dump):
    core = str(getattr(lab.snapshot, dump))
    cp = subprocess.run([sys.executable, "-m", "tests.lab.in_guest.debuginfo", core, str(lab.vmlinux),
                         json.dumps(commands(lab, live=False))], capture_output=True, text=True, timeout=900)
    assert cp.returncode == 0, cp.stderr[-2000:]
    _verdict(json.loads(cp.stdout))


def test_btf_output_is_dwarf_output_live(lab_live_debuginfo):
    _verdict(copy.deepcopy(lab_live_debuginfo))


def test_auto_uses_btf_without_vmlinux(lab):
    """No vmlinux in the standard places: auto says BTF, and why."""
    rc, out, err = lab.kcoretool("info")
    assert rc == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("debug info"))
    assert line.split(None, 2)[2] == (f"BTF from /sys/kernel/btf/vmlinux (no vmlinux with DWARF for "
                                      f"{lab.release} in the standard places)")
    rc, out, err = lab.kcoretool_host("-c", str(lab.snapshot.kdump), "--json", "info")
    assert rc == 0, err
    assert json.loads(out)["debuginfo"] == {
        "mode": "auto", "kind": "btf", "source": "kernel memory",
        "reason": f"no vmlinux with DWARF for {lab.release} in the standard places"}


def test_btf_sources_live_and_offline(lab):
    """Live BTF comes from sysfs and kallsyms from /proc/kallsyms; on a dump
    both come from the kernel's memory."""
    rc, out, err = lab.kcoretool("--debuginfo", "btf", "vmalloc", "stats")
    assert rc == 0, err
    rc, out, err = lab.kcoretool_host("-c", str(lab.snapshot.kdump), "--debuginfo", "dwarf", "vmalloc", "stats")
    assert rc == 1
    assert err.strip() == (f"kcoretool: no debug info for Linux {lab.release}; install "
                           f"linux-image-{lab.release}-dbg (Debian/Ubuntu) or kernel-debuginfo-{lab.release} "
                           "(Fedora/RHEL), or pass --vmlinux")


_MODULE_BTF = """
import json, os
from kcoretool.kernel.program import open_program
prog = open_program(debuginfo="btf")
t = prog.type("struct p9_client")
print(json.dumps({"members": [m.name for m in t.members], "size": t.size,
                  "modules": prog.cache["kcoretool_btf"].modules_btf,
                  "skipped": prog.cache["kcoretool_btf"].modules_btf_skipped,
                  "sysfs": sorted(os.listdir("/sys/kernel/btf"))}))
"""


def test_module_btf_live_and_offline(lab):
    """A module's own types (9pnet's struct p9_client) come from its split
    BTF: live /sys/kernel/btf/9pnet, offline the kernel's btf_modules copy;
    both give the same type and read the same modules."""
    if not SERIES_BY_NAME[lab.kernel].expect.module_btf:
        # 5.10: no module BTF anywhere; a module's type is simply not found.
        rc, out, err = lab.run(["ls", "/sys/kernel/btf"])
        assert rc == 0 and out.split() == ["vmlinux"], (out, err)
        from kcoretool.kernel.program import open_program

        prog = open_program(str(lab.snapshot.kdump), debuginfo="btf")
        with pytest.raises(LookupError):
            prog.type("struct p9_client")
        assert prog.cache["kcoretool_btf"].modules_btf == {} or not prog.cache["kcoretool_btf"].modules_btf
        return
    rc, out, err = lab.run([sys.executable, "-c", _MODULE_BTF], timeout=300)
    assert rc == 0, err[-2000:]
    live = json.loads(out)
    assert live["members"][:4] == ["lock", "msize", "proto_version", "trans_mod"]
    assert "9pnet" in live["modules"] and live["skipped"] == []
    assert sorted(live["modules"]) == [m for m in live["sysfs"] if m != "vmlinux"]
    from kcoretool.kernel.program import open_program

    prog = open_program(str(lab.snapshot.kdump), debuginfo="btf")
    t = prog.type("struct p9_client")
    assert ([m.name for m in t.members], t.size) == (live["members"], live["size"])
    assert sorted(prog.cache["kcoretool_btf"].modules_btf) == sorted(live["modules"])


STRUCTS = ("struct vmap_area", "struct vm_struct", "struct vmap_block", "struct vmap_block_queue",
           "struct vmap_node", "struct vmap_pool", "struct xarray", "struct xa_node", "struct page",
           "struct pglist_data", "struct mm_struct", "struct module", "struct task_struct",
           "struct kmem_cache", "struct slab", "struct mem_section", "struct list_head", "struct rb_root",
           "struct llist_head", "struct cpumask", "struct memblock", "struct btf", "struct btf_module",
           "enum pageflags", "struct irq_desc")


def _array(t) -> str:
    """BTF cannot say ``x[0]`` from ``x[]``, and pahole flattens ``int x[4][2][5]``
    into ``int x[40]`` (same bytes): render DWARF arrays the way BTF can."""
    import drgn

    n = 1
    while t.kind == drgn.TypeKind.ARRAY:
        n = n * t.length if t.length is not None else 0
        t = t.type
    return f"{t.type_name()} [{n or ''}]"


def describe(t, depth: int = 0) -> str:
    """Names, sizes, member bit offsets and bit-field sizes, two levels deep."""
    import drgn

    if t.kind == drgn.TypeKind.ARRAY:
        return _array(t)
    out = [str(t.type_name())]
    if t.is_complete() and t.kind not in (drgn.TypeKind.FUNCTION, drgn.TypeKind.VOID):
        out.append(f"size={drgn.sizeof(t)}")
    if t.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) and t.is_complete() and depth < 2:
        for m in t.members:
            out.append(f"  {m.name}@{m.bit_offset}:{m.bit_field_size or ''} "
                       + describe(m.type, depth + 1).replace("\n", "\n  "))
    elif t.kind == drgn.TypeKind.ENUM and t.is_complete():
        out.append(" ".join(f"{e.name}={e.value}" for e in t.enumerators))
    elif t.kind == drgn.TypeKind.TYPEDEF and depth < 2:
        out.append("= " + describe(t.type, depth + 1))
    return "\n".join(out)


def test_btf_types_are_the_dwarf_types(lab):
    """The structures kcoretool and the drgn helpers it calls read, two levels
    deep: same members, bit offsets, bit fields, sizes and enumerators."""
    from kcoretool.kernel.program import open_program

    core = str(lab.snapshot.kdump)
    dwarf = open_program(core, str(lab.vmlinux), debuginfo="dwarf", modules=False)
    btf = open_program(core, debuginfo="btf", modules=False)
    compared, diffs = 0, []
    for name in STRUCTS:
        try:
            want = describe(dwarf.type(name))
        except LookupError:
            with pytest.raises(LookupError):
                btf.type(name)  # e.g. vmap_node before 6.9: absent from both
            continue
        got = describe(btf.type(name))
        compared += 1
        if got != want:
            diffs.append("\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(), name, "btf",
                                                        lineterm="", n=0)))
    assert diffs == []
    assert compared >= 20
