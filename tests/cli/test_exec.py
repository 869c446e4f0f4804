# SPDX-License-Identifier: LGPL-2.1-or-later
"""Executable memory (issue 12) on synthetic kernels: the layouts no lab
kernel has -- modules before 6.4 (core_layout/init_layout) and execmem's
ROX cache (6.18+) -- plus packs, trampolines, kprobe/ftrace pages, the
CLI faces and hostile input.  Real kernels: tests/lab/test_exec.py."""

from __future__ import annotations

import json
from typing import Any, List

import click
from click.testing import CliRunner

from kcoretool.api import Kernel
from kcoretool.cli.exec import exec_
from kcoretool.cli.vmalloc import vmalloc, whatis
from kcoretool.kernel.execmem import detect_exec_layout
from tests.synth import execmem as sx
from tests.synth.layouts import MODULES_VADDR as M

PACK = M + 0x200000


def _with_page_tables(k: Any, K: Kernel) -> Kernel:
    """Map the pack's first 4 pages through hand-built page tables to
    physical pages holding the synthetic bytes, for the reader."""
    from kcoretool.reader.pagetable import PageTableWalker
    from tests.ptbuild import build as pt_build

    mem, root, map4k, _m2, _m1 = pt_build()
    for i in range(4):
        phys = 0x20000000 + i * 0x1000
        mem.write(phys, k.prog.read(PACK + i * 0x1000, 0x1000))
        map4k(PACK + i * 0x1000, phys)
    K._walker = PageTableWalker(mem.read, root)
    K.read_phys_source = lambda: mem.read  # type: ignore[method-assign]
    return K


class _Obj:
    core_path = "/proc/kcore"
    vmlinux = None
    debug = False
    warned = False

    def __init__(self, prog: Any, as_json: bool, kernel: Any = None) -> None:
        self._kernel = kernel or Kernel(prog)
        self.json = as_json

    def kernel(self) -> Kernel:
        return self._kernel


def run(k: Any, args: List[str], as_json: bool = False, kernel: Any = None) -> Any:
    o = _Obj(k.prog, as_json, kernel)

    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = o

    for c in (exec_, vmalloc, whatis):
        root.add_command(c)
    return CliRunner().invoke(root, args)


def rows(k: Any, *args: str) -> List[dict]:
    r = run(k, ["exec", "list", *args], as_json=True)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_layout_detection() -> None:
    k, _ = sx.standard("6.12", "mem")
    lay = detect_exec_layout(k.prog)
    assert (lay.module_memory, lay.prog_pack, lay.bpf_kallsyms, lay.prog_idr, lay.rox_cache) == \
        ("mem", True, True, True, False)
    assert any("ac3b432839234" in d["commit"] for d in lay.describe())
    k, _ = sx.standard("6.1", "layout")
    assert detect_exec_layout(k.prog).module_memory == "layout"


def test_modules_mem_layout() -> None:
    k, _ = sx.standard("6.12", "mem")
    got = [(r["start"] - M, r["size"], r["kind"], r["owner"]) for r in rows(k, "--owner", "mod*")]
    assert got == [
        (0x1000000, 0x2345, "module-text", "modone"), (0x1010000, 0x1000, "module-data", "modone"),
        (0x1020000, 0x800, "module-rodata", "modone"), (0x1030000, 0x100, "module-ro-after-init", "modone"),
        (0x1100000, 0x1000, "module-text", "modinit"), (0x1110000, 0x1000, "module-data", "modinit"),
        (0x1120000, 0x1000, "module-init-text", "modinit"),
    ]


def test_modules_before_6_4() -> None:
    """core_layout/init_layout: [0, text_size) text, .. ro_size rodata, ..
    ro_after_init_size, the rest data; init likewise; one area per layout."""
    k, _ = sx.standard("6.1", "layout")
    got = [(r["start"] - M, r["size"], r["kind"], r["owner"], r["area"] - M) for r in rows(k, "--owner", "mod*")]
    assert got == [
        (0x1000000, 0x3000, "module-text", "modone", 0x1000000),
        (0x1003000, 0x1000, "module-rodata", "modone", 0x1000000),
        (0x1004000, 0x1000, "module-ro-after-init", "modone", 0x1000000),
        (0x1005000, 0x1000, "module-data", "modone", 0x1000000),
        (0x1100000, 0x1000, "module-text", "modinit", 0x1100000),
        (0x1101000, 0x1000, "module-data", "modinit", 0x1100000),
        (0x1200000, 0x1000, "module-init-text", "modinit", 0x1200000),
        (0x1201000, 0x1000, "module-init-rodata", "modinit", 0x1200000),
        (0x1202000, 0x1000, "module-init-data", "modinit", 0x1200000),
    ]
    r = run(k, ["whatis", hex(M + 0x1003010)])
    assert f"{M + 0x1003010:#x}: module modone rodata +0x10\n" in r.output
    r = run(k, ["vmalloc", "list", "--kind", "exec"], as_json=True)
    owners = {a["start"] - M: a["owner"] for a in json.loads(r.output)}
    assert owners[0x1000000] == "modone" and owners[0x1200000] == "modinit"


def test_bpf_pack_and_programs() -> None:
    k, _ = sx.standard("6.12", "mem")
    progs = {r["owner"]: r for r in rows(k, "--kind", "bpf-prog")}
    a = progs["alpha"]
    assert (a["start"], a["end"], a["tag"], a["id"], a["prog_type"], a["symbol"]) == \
        (PACK + 0x20, PACK + 0x130, "1122334455667788", 7, "socket_filter", "bpf_prog_1122334455667788_alpha")
    assert (a["alloc_start"], a["alloc_end"], a["container"], a["area"]) == (PACK, PACK + 0x140, PACK, PACK)
    # In prog_idr without a ksym (e.g. loaded without CAP_BPF): still found.
    n = progs["noksym"]
    assert (n["start"], n["id"], n["symbol"]) == (PACK + 0x4008, 11, "bpf_prog_0102030405060708_noksym")
    packs = json.loads(run(k, ["exec", "packs"], as_json=True).output)
    assert len(packs) == 1
    p = packs[0]
    # alpha 5 chunks, beta 40, orphans 4 + 2, trampoline 24, noksym 2, dispatcher 64
    assert (p["start"], p["size"], p["chunk_size"], p["used_chunks"]) == \
        (PACK, 2 << 20, 64, 5 + 40 + 4 + 2 + 24 + 2 + 64)
    assert p["free_chunks"] == 32768 - p["used_chunks"]
    # Split at their bpf_binary_headers (e.g. two classic BPF filters).
    assert p["unattributed"] == [[PACK + 0x2000, PACK + 0x2100], [PACK + 0x2100, PACK + 0x2180]]
    assert p["largest_free_run"] == PACK + 0x400000 // 2 - (PACK + 0x6000)
    assert [x["name"] for x in p["progs"]] == ["alpha", "beta", "noksym"]
    kinds = [(r["kind"], r["owner"]) for r in rows(k, "--kind", "unattributed", "--kind", "bpf-trampoline",
                                                   "--kind", "bpf-dispatcher")]
    assert kinds == [("unattributed", "bpf_prog_pack")] * 2 + [("bpf-trampoline", "bpf_trampoline_6442451234"),
                     ("bpf-dispatcher", "bpf_dispatcher_xdp"), ("bpf-dispatcher", "bpf_dispatcher_xdp (rw image)")]
    table = run(k, ["exec", "packs"]).output
    assert "(unattributed)" in table and "bpf_trampoline_6442451234" in table and "alpha" in table
    # vmalloc list names the pack's owner
    r = run(k, ["vmalloc", "list", "--kind", "exec"])
    assert "OWNER" in r.output.splitlines()[0] and "bpf_prog_pack: 3 progs" in r.output


def test_free_runs_cover_the_rest() -> None:
    k, _ = sx.standard("6.12", "mem")
    rs = [r for r in rows(k) if r["container"] == PACK and r["kind"] != "bpf-prog"]
    progs = list(rows(k, "--kind", "bpf-prog"))
    spans = sorted([(r["start"], r["end"]) for r in rs] + [(r["alloc_start"], r["alloc_end"]) for r in progs])
    # Chunk-rounded, the pack is tiled exactly: nothing dropped, nothing twice.
    cur = PACK
    for lo, hi in spans:
        assert lo - cur < 64, (hex(lo), hex(cur))
        cur = (hi + 63) & ~63
    assert cur == PACK + (2 << 20)


def test_whatis_and_dump(tmp_path: Any) -> None:
    k, _ = sx.standard("6.12", "mem")
    r = run(k, ["whatis", hex(PACK + 0x25)])
    assert f"{PACK + 0x25:#x}: bpf prog alpha (tag 1122334455667788, id 7) +0x5 of 0x110\n" in r.output
    r = run(k, ["whatis", hex(M + 0x1000010)])
    assert f"{M + 0x1000010:#x}: module modone text +0x10\n" in r.output
    r = run(k, ["whatis", hex(M + 0x520010)])
    assert f"{M + 0x520010:#x}: ftrace-trampoline ftrace_trampoline (kprobe_ftrace_handler) +0x10 of 0x1a8\n" \
        in r.output
    out = tmp_path / "alpha.bin"
    K = _with_page_tables(k, Kernel(k.prog))
    r = run(k, ["exec", "dump", "alpha", "-o", str(out)], kernel=K)
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == bytes((7 + i) & 0xFF for i in range(64)) + bytes(0x110 - 64)
    assert f"{out}: 272 bytes of bpf-prog alpha (tag 1122334455667788, id 7) {PACK + 0x20:#x}-{PACK + 0x130:#x}: " \
        "data 1" in r.output
    assert out.stat().st_mode & 0o777 == 0o600  # kernel memory: a new file is private (issue 22)
    assert [p.name for p in tmp_path.iterdir()] == ["alpha.bin"]  # no temporary left behind
    r = run(k, ["exec", "dump", hex(PACK + 0x190), "-o", str(tmp_path / "beta.bin")], as_json=True, kernel=K)
    d = json.loads(r.output)
    assert d["region"]["owner"] == "beta" and d["bytes_by_state"] == {"data": 0x9e8}


def test_dump_errors(tmp_path: Any) -> None:
    k, _ = sx.standard("6.12", "mem")
    r = run(k, ["exec", "dump", "nosuch", "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and "no executable allocation owned by 'nosuch'" in str(r.exception)
    r = run(k, ["exec", "dump", "mod*", "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and "names 2 allocations" in str(r.exception)
    assert list(tmp_path.iterdir()) == []
    r = run(k, ["exec", "dump", "alpha", "-o", "/nonexistent/dir/x"])
    assert r.exit_code == 1 and str(r.exception) == \
        "/nonexistent/dir/x: cannot create it: directory /nonexistent/dir does not exist"  # as read -o says it
    r = run(k, ["exec", "list", "--kind", "bogus"])
    assert r.exit_code == 2 and "unknown kind 'bogus'" in r.output


def test_rox_cache() -> None:
    """execmem's ROX cache (real on the lab's 7.3, tests/lab/test_exec.py;
    here a synthetic scene with odd entries): busy maple-tree entries attributed to the module text and the
    kprobe page starting there, the rest unattributed (a deferred free
    flagged), the free tree as free."""
    k, _ = sx.standard("6.12", "mem", rox=True)
    cache = M + 0x2000000
    got = [(r["start"] - cache, r["end"] - cache, r["kind"], r["owner"], r.get("pending_free", False))
           for r in rows(k) if r["area"] == cache]
    assert got == [
        (0, 0x1000, "free", "execmem_cache", False),
        (0x1000, 0x2800, "module-text", "roxmod", False),
        (0x3000, 0x4000, "kprobe-insn", "kprobe_insn_page", False),
        (0x4000, 0x8000, "free", "execmem_cache", False),
        (0x8000, 0x9000, "unattributed", "execmem_cache", True),
        (0x10000, 0x11000, "unattributed", "execmem_cache", False),
        (0x20000, 0x23000, "unattributed", "execmem_cache", False),
        (0x30000, 0x31000, "unattributed", "execmem_cache", False),
        (0x40000, 0x41000, "unattributed", "execmem_cache", False),
        (0x41000, 2 << 20, "free", "execmem_cache", False),
    ]
    text = next(r for r in rows(k, "--owner", "roxmod", "--kind", "module-text"))
    assert (text["alloc_start"], text["alloc_end"], text["container"]) == (cache + 0x1000, cache + 0x3000, cache)
    r = run(k, ["vmalloc", "list", "--kind", "exec"], as_json=True)
    assert {a["start"]: a["owner"] for a in json.loads(r.output)}[cache] == "execmem_cache: 7 allocations"
    # exec cache: the same ranges, grouped under their cache area, with the sums
    r = run(k, ["exec", "cache"], as_json=True)
    assert r.exit_code == 0, r.output
    [page] = json.loads(r.output)
    assert page["start"] == cache
    assert [(x["kind"], x["owner"]) for x in page["ranges"]] == [(k_, o) for _, _, k_, o, _ in got]
    assert page["free"] == 0x1000 + 0x4000 + ((2 << 20) - 0x41000)
    assert page["used"] == 0x2000 + 0x1000 + 0x1000 * 4 + 0x3000
    assert page["largest_free"] == (2 << 20) - 0x41000
    r = run(k, ["exec", "cache"])
    assert r.output.splitlines()[0].split() == ["AREA", "USED", "FREE", "LARGEST", "FREE", "OWNED", "UNATTRIBUTED"]
    assert f"cache area {cache:#x}:" in r.output
    k2, _ = sx.standard("6.12", "mem")
    assert run(k2, ["exec", "cache"]).output == "no execmem ROX cache (this kernel has none)\n"


def test_hostile_lists_are_bounded() -> None:
    """A corrupt pack_list and a bpf_kallsyms cycle: warnings, no hang, the rest still there."""
    k, _ = sx.standard("6.12", "mem")
    img = k.img
    img.w64(img.globals["pack_list"][1], 0x1234)  # not a pointer
    ks = img.globals["bpf_kallsyms"][1]
    first = img.r64(ks)
    img.w64(first, first)  # the first symbol points at itself
    K = Kernel(k.prog)
    m = K.exec_memory()
    assert m.packs == [] and any("pack_list" in w for w in m.warnings)
    assert any("bpf_kallsyms" in w and "cycle" in w for w in m.warnings)
    assert {r.owner for r in m.regions if r.kind.startswith("module-")} == {"modone", "modinit"}
    r = run(k, ["exec", "list"])
    assert r.exit_code == 0 and "problem(s) walking executable memory" in r.output


def test_bulk_programs() -> None:
    k = sx.bulk(300)
    progs = rows(k, "--kind", "bpf-prog")
    assert len(progs) == 300 and progs[0]["owner"] == "p0" and progs[-1]["id"] == 300
    assert all(p["alloc_end"] - p["alloc_start"] == 256 for p in progs)


def test_vmalloc_json_owner_stream_matches_dicts() -> None:
    from kcoretool.model.area_json import iter_areas_json

    k, _ = sx.standard("6.1", "layout")
    K = Kernel(k.prog)
    m = K.vmalloc()
    owners = K.exec_memory().area_owners()
    got = json.loads("".join(iter_areas_json(m.areas, 4096, chunk=2, owners=owners)))
    assert got == [dict(a.to_dict(4096), owner=owners.get(a.start)) for a in m.areas]
    assert {"modone", "modinit", "bpf_prog_pack: 3 progs"} <= {r["owner"] for r in got}


def test_hostile_maple_tree_is_bounded() -> None:
    """A ROX-cache busy tree whose internal node points at itself: a
    warning, the rest of the model intact, no hang."""
    k, _ = sx.standard("6.12", "mem", rox=True)
    img = k.img
    c = img.globals["execmem_cache"][1]
    mt = c + img.offsetof("execmem_cache", "busy_areas")
    root = img.r64(mt + img.offsetof("maple_tree", "ma_root"))
    node = root & ~0xFF
    img.w64(node + 8 + 8 * 15, root & ~2)  # slot[0] -> the root node itself
    m = Kernel(k.prog).exec_memory()
    assert any("execmem_cache.busy_areas" in w for w in m.warnings)
    assert {r.owner for r in m.regions if r.kind == "module-text"} >= {"modone", "roxmod"}
