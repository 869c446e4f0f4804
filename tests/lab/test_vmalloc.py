# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The vmalloc model on the lab's real Debian 6.1 and 6.12 kernels (marker
``lab``): layout detection, /proc/vmallocinfo line for line, the test
module's known areas, vmap block pieces, lazy areas, drgn cross-checks.
"""

from __future__ import annotations

import json
import sys

import pytest

from kcoretool.kernel import Symbolizer, detect_layout, open_program
from kcoretool.model import from_program, vm_numa_counts, vm_page_physaddrs, vmallocinfo_lines, whatis
from tests.lab.config import SERIES_BY_NAME
from tests.module_areas import KIND

pytestmark = pytest.mark.lab

_cache: dict = {}


def _prog_model(lab, which: str = "elf"):
    key = (lab.kernel, which, str(lab.snapshot.dir))
    if key not in _cache:
        prog = open_program(str(lab.snapshot.paths[which]), str(lab.vmlinux))
        _cache[key] = (prog, from_program(prog))
    return _cache[key]


def test_layout(lab) -> None:
    prog, m = _prog_model(lab)
    L = detect_layout(prog)
    x = SERIES_BY_NAME[lab.kernel].expect
    assert (L.busy, L.va_flags, L.lazy, L.block_index) == x.layout
    assert (L.block_used_map, L.block_cpu, L.va_flags_node_id, L.vm_sparse, L.vm_page_order,
            L.vm_requested_size) == (x.used_map, x.block_cpu, x.nodes, x.nodes, x.page_order, x.requested_size)
    # Debian's 6.12.117 carries the show_numa_info() data-race fix
    assert L.vmallocinfo_skips_uninitialized == x.nodes
    assert not m.warnings
    assert m.vmalloc_start == lab.ground_truth["vmalloc_start"]
    assert m.modules_start == lab.ground_truth["modules_vaddr"]


def test_vmallocinfo_line_for_line(lab) -> None:
    prog, m = _prog_model(lab)
    sym = Symbolizer(prog, kallsyms_size=True)
    ours = list(vmallocinfo_lines(m, numa=vm_numa_counts(prog) if m.numa else None, symbolize=sym))
    assert ours == lab.snapshot.vmallocinfo.splitlines()


def test_drgn_agrees(lab) -> None:
    from drgn.helpers.linux.mm import for_each_vmap_area

    prog, m = _prog_model(lab)
    assert {a.vmap_area for a in m.walk_order} == {va.value_() for va in for_each_vmap_area(prog)}


def test_module_areas(lab) -> None:
    prog, m = _prog_model(lab)
    mod = lab.snapshot.module
    for t in mod["areas"]:
        if t["kind"] in KIND and t["live"]:
            a = m.find(t["addr"], include_lazy=False)
            assert a is not None and a.start == t["addr"], t["name"]
            assert a.kind == KIND[t["kind"]], t["name"]
            if a.vm is not None:
                assert a.vm.caller_symbol.startswith(t["caller"] + "+"), t["name"]
                assert a.vm.caller_symbol.endswith("[kcoretool_test]")
                if t["kind"].startswith("vmalloc"):
                    # vmap() leaves nr_pages 0 (no VM_MAP_PUT_PAGES)
                    assert a.vm.nr_pages == t["nr_pages"], t["name"]
            if t["kind"] == "vmalloc_huge":
                assert a.vm.page_order == 9
            if t["kind"] == "vm_map_ram_large":
                assert a.vm is None and a.size == t["size"]
        elif t["kind"] == "lazy_freed":
            assert [x.start for x in m.lazy if x.start == t["addr"]] == [t["addr"]]
            assert m.find(t["addr"], include_lazy=False) is None
    buf = mod["json_buffer"]
    a = m.find(buf["addr"])
    assert a is not None and a.start == buf["addr"] and a.kind == "vmalloc"
    if "kct_alloc_json_buffer+" in lab.snapshot.vmallocinfo:  # older modules: raw address
        assert a.vm.caller_symbol.startswith("kct_alloc_json_buffer+")


def test_block_pieces(lab) -> None:
    prog, m = _prog_model(lab)
    mod = lab.snapshot.module
    pieces = [t for t in mod["areas"] if t["kind"] == "vm_map_ram_piece"]
    bstart = pieces[0]["block_start"]
    (b,) = [b for b in m.blocks if b.start == bstart]
    assert b.bits == mod["vmap_bbmap_bits"] and b.size == mod["vmap_block_size"]
    assert m.find(bstart).kind == "vmap_block"
    # vb_alloc() hands out 1 << get_order(size) pages: a 3-page piece takes 4
    live = set()  # allocated pages of live pieces
    mapped_live = set()  # pages vm_map_ram() actually mapped
    for t in pieces:
        off = t["block_offset_pages"]
        units = 1 << (t["nr_pages"] - 1).bit_length()
        for p in range(off, off + units):
            if t["live"]:
                live.add(p)
                if p < off + t["nr_pages"]:
                    mapped_live.add(p)
            hit = m.find_piece(bstart + p * 4096 + 8)
            assert hit is not None and hit[0] is b
            assert (hit[1] is not None) == t["live"], (t["name"], p)
    used = {p for x, y in b.used for p in range(x, y)}
    assert used == live
    assert b.dirty == sum(1 << (t["nr_pages"] - 1).bit_length() for t in pieces if not t["live"])
    if not SERIES_BY_NAME[lab.kernel].expect.used_map:
        # no used_map: derived from free/dirty/dirty range; check it against
        # the page tables (vb_free unmaps at once)
        assert b.used_source == "derived"
        from kcoretool.model.build import _mapped_pages

        top = b.bits - b.free
        mapped = _mapped_pages(prog, b.start, 0, top, 4096)
        assert {i for i, x in enumerate(mapped) if x} == mapped_live
    else:
        assert b.used_source == "used_map" and b.cpu_source == "vmap_block.cpu"


def test_pages_physaddrs(lab) -> None:
    prog, m = _prog_model(lab)
    t = next(t for t in lab.snapshot.module["areas"] if t["name"] == "vmalloc_3p")
    a = m.find(t["addr"])
    assert vm_page_physaddrs(prog, a.vm) == [p["phys"] for p in t["pages"]]


def test_whatis(lab) -> None:
    prog, m = _prog_model(lab)
    t = next(t for t in lab.snapshot.module["areas"] if t["name"] == "ram_piece_3p")
    res = whatis(prog, t["addr"] + 4096, m)
    assert res.kinds()[:2] == ["vmalloc", "vmap_block piece"]
    assert res.area is not None and res.area.start <= t["addr"] < res.area.end
    piece = res.what[1].fields["piece"]
    # rounded up to a power of two pages inside the block
    assert piece[0] == t["addr"] and piece[1] == t["addr"] + 4 * 4096


def test_stats_lazy(lab) -> None:
    prog, m = _prog_model(lab)
    st = m.stats()
    lazy_pages = sum(a.size // 4096 for a in m.lazy)
    assert st["lazy"]["pages"] == lazy_pages
    assert st["lazy"]["vmap_lazy_nr"] == lazy_pages
    cpus = lab.ground_truth["cpus"]
    if isinstance(cpus, str):  # "0-1"
        n = 0
        for part in cpus.split(","):
            lo, _, hi = part.partition("-")
            n += int(hi or lo) - int(lo) + 1
        cpus = n
    # lazy_max_pages() = fls(num_online_cpus()) * 32 MiB / PAGE_SIZE
    assert st["lazy"]["lazy_max_pages"] == int(cpus).bit_length() * 8192


def test_kdump_compressed_same_areas(lab) -> None:
    _, m = _prog_model(lab)
    _, k = _prog_model(lab, "kdump")
    assert [(a.start, a.end, a.kind) for a in k.areas] == [(a.start, a.end, a.kind) for a in m.areas]


def test_cli_on_snapshot(lab) -> None:
    rc, out, err = lab.kcoretool_host(
        "-c", str(lab.snapshot.paths["elf"]), "--vmlinux", str(lab.vmlinux),
        "vmalloc", "list", "--format", "vmallocinfo",
    )
    assert rc == 0, err
    assert out.splitlines() == lab.snapshot.vmallocinfo.splitlines()
    rc, out, err = lab.kcoretool_host(
        "-c", str(lab.snapshot.paths["elf"]), "--vmlinux", str(lab.vmlinux),
        "--json", "vmalloc", "list", "--kind", "vm_map_ram",
    )
    assert rc == 0, err
    rows = json.loads(out)
    big = next(t for t in lab.snapshot.module["areas"] if t["kind"] == "vm_map_ram_large")
    assert [r["start"] for r in rows] == [big["addr"]]


def test_live_kcore_in_guest(lab) -> None:
    """The CLI on the live guest's /proc/kcore finds the module's areas.
    Both commands run in one guest process (tests/lab/in_guest/cli.py): each fresh
    process would index the DWARF again, a minute under TCG."""
    base = ["-c", "/proc/kcore", "--vmlinux", str(lab.vmlinux), "--json", "vmalloc"]
    rc, out, err = lab.run([sys.executable, "-m", "tests.lab.in_guest.cli",
                            json.dumps([base + ["list", "--caller", "kct_*"], base + ["blocks"]])], timeout=600)
    assert rc == 0, err
    listed, blocks = json.loads(out)
    assert listed["rc"] == 0, listed["err"]
    rows = {r["start"]: r for r in json.loads(listed["out"])}
    for t in lab.snapshot.module["areas"]:
        if t["kind"] in KIND and t["live"] and t["kind"] != "vm_map_ram_large":
            assert rows[t["addr"]]["kind"] == KIND[t["kind"]], t["name"]
    assert blocks["rc"] == 0, blocks["err"]
    out = blocks["out"]
    bstart = next(t["block_start"] for t in lab.snapshot.module["areas"]
                  if t["kind"] == "vm_map_ram_piece")
    assert bstart in {b["start"] for b in json.loads(out)}
