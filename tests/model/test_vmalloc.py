# SPDX-License-Identifier: LGPL-2.1-or-later
"""The vmalloc model on synthetic kernels of every layout."""

from __future__ import annotations

import json

import pytest
from drgn.helpers.linux.mm import find_vmap_area, for_each_vmap_area

from kcoretool.model import (
    KINDS,
    VmallocModel,
    from_program,
    vmallocinfo_lines,
)
from kcoretool.model.area_json import iter_areas_json
from tests.synth.layouts import (
    BBMAP_BITS,
    BLOCK_SIZE,
    FEATURES,
    LAYOUTS,
    MODULES_VADDR,
    PAGE,
    VM_ALLOC,
    VMALLOC_START,
    AreaSpec,
    BlockSpec,
    Scene,
    build,
    standard_scene,
)

V = VMALLOC_START


def model(layout: str, scene=None) -> VmallocModel:
    return from_program(build(layout, scene or standard_scene(layout)).prog)


EXPECTED_KINDS = {
    V + 0x0000000: "vmalloc",
    V + 0x0010000: "vmap",
    V + 0x0020000: "ioremap",
    V + 0x0030000: "user-mapped",
    V + 0x0040000: "dma-coherent",
    V + 0x0050000: "uninitialised",
    V + 0x0200000: "vmalloc",
    V + 0x0800000: "vm_map_ram",
    V + 0x0C00000: "vmap_block",
    V + 0x1000000: "sparse",
    MODULES_VADDR: "exec",
    MODULES_VADDR + 0x200000: "exec",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_kinds(layout: str) -> None:
    m = model(layout)
    assert not m.warnings
    got = {a.start: a.kind for a in m.areas}
    want = {s: k for s, k in EXPECTED_KINDS.items() if s != V + 0x1000000 or FEATURES[layout].sparse}
    assert got == want
    assert all(a.kind in KINDS for a in m.areas)
    assert [a.start for a in m.areas] == sorted(a.start for a in m.areas)
    # lazy area: freed, not yet purged
    assert [(a.start, a.kind, a.lazy) for a in m.lazy] == [(V + 0x60000, "lazy", True)]
    # pooled areas only exist with vmap_nodes
    assert len(m.pooled) == (1 if FEATURES[layout].nodes else 0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_vm_struct_fields(layout: str) -> None:
    m = model(layout)
    huge = m.find(V + 0x200000 + 5)
    assert huge is not None and huge.vm is not None
    assert huge.vm.nr_pages == 1024
    assert huge.vm.page_order == (9 if FEATURES[layout].page_order else None)
    assert huge.vm.flag_names == ("VM_ALLOC",)
    assert huge.vm.caller_symbol == "kvmalloc_node+0x4b/0x200"
    io = m.find(V + 0x20000)
    assert io.vm.phys_addr == 0xFED00000 and io.vm.nr_pages == 0
    assert io.vm.requested_size == (io.size - PAGE if layout == "latest" else None)
    ram = m.find(V + 0x800000)
    assert ram.vm is None and ram.kind == "vm_map_ram"
    if FEATURES[layout].nodes:
        # node id (pool origin) decoded from flags bits 8-15, masked for kind
        assert ram.flags_node_id == 1 and ram.va_flags & 0x3 == 0x1
        assert ram.node == (ram.start // (16 * PAGE)) % 2


@pytest.mark.parametrize("layout", LAYOUTS)
def test_blocks(layout: str) -> None:
    m = model(layout)
    (b,) = m.blocks
    assert (b.start, b.end, b.bits) == (V + 0xC00000, V + 0xC00000 + BLOCK_SIZE, BBMAP_BITS)
    assert b.used == ((0, 4), (6, 7))
    assert b.used_source == ("used_map" if FEATURES[layout].used_map else "derived")
    assert b.cpu == 1
    assert b.cpu_source == ("vmap_block.cpu" if FEATURES[layout].block_cpu else "free list")
    assert b.pieces() == [(b.start, b.start + 4 * PAGE), (b.start + 6 * PAGE, b.start + 7 * PAGE)]
    area = m.find(b.start)
    assert m.block_of(area) is b
    blk, piece = m.find_piece(b.start + 6 * PAGE + 8)
    assert blk is b and piece == (b.start + 6 * PAGE, b.start + 7 * PAGE)
    blk, piece = m.find_piece(b.start + 5 * PAGE)  # the dirty hole
    assert blk is b and piece is None


def test_pre63_block_dirty_range_reset_is_unknown() -> None:
    # vm_unmap_aliases() resets dirty_min/max: without used_map and page
    # tables, which pages are dirty cannot be derived.
    sc = standard_scene("6.1")
    sc.blocks[0].dirty_min, sc.blocks[0].dirty_max = BBMAP_BITS, 0
    m = model("6.1", sc)
    b = m.blocks[0]
    assert b.used is None and b.used_source == "unknown"
    assert any("unknown" in n for n in b.notes)


def test_full_block_cpu_unknown_before_610() -> None:
    sc = standard_scene("6.4")
    sc.blocks[0] = BlockSpec(V + 0xC00000, cpu=1, used=[(0, BBMAP_BITS)], free=0, dirty=0)
    m = model("6.4", sc)
    assert m.blocks[0].cpu is None and "hash" in " ".join(m.blocks[0].notes)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_drgn_helpers_agree(layout: str) -> None:
    """drgn's own for_each_vmap_area/find_vmap_area see the same areas."""
    k = build(layout, standard_scene(layout))
    m = from_program(k.prog)
    ours = {a.vmap_area for a in m.walk_order}
    theirs = {va.value_() for va in for_each_vmap_area(k.prog)}
    assert ours == theirs
    for a in m.areas:
        assert find_vmap_area(k.prog, a.start + 1).value_() == a.vmap_area


@pytest.mark.parametrize("layout", LAYOUTS)
def test_json_and_compare(layout: str) -> None:
    m1 = model(layout)
    m2 = model(layout)
    d = json.loads(m1.to_json())
    assert len(d["areas"]) == len(m1.areas)
    assert d["layout"]["busy"] == m1.layout.busy
    assert m1 == m2
    assert m1.areas == m2.areas and m1.blocks == m2.blocks
    assert sorted(m1.areas) == m1.areas


def test_diff() -> None:
    sc = standard_scene("6.12")
    m1 = model("6.12", sc)
    sc2 = standard_scene("6.12")
    sc2.areas.append(AreaSpec(V + 0x2000000, 3 * PAGE, VM_ALLOC, "leaky_driver_alloc"))
    sc2.areas = [a for a in sc2.areas if a.start != V + 0x10000]
    m2 = model("6.12", sc2)
    d = m1.diff(m2)
    assert [a.start for a in d["added"]] == [V + 0x2000000]
    assert [a.start for a in d["removed"]] == [V + 0x10000]


def test_free_holes_histogram_fits() -> None:
    m = model("6.12")
    holes = m.vmalloc_holes()
    assert holes[0].start == V + 5 * PAGE and holes[0].end == V + 0x10000
    assert all(m.vmalloc_start <= h.start < h.end <= m.vmalloc_end for h in holes)
    hist = m.hole_histogram()
    assert sum(hist.values()) == len(holes)
    assert all(k & (k - 1) == 0 for k in hist)
    fits = m.fits(0x8000)
    assert fits and fits[0][1] == V + 5 * PAGE  # the first hole is 44 KiB
    aligned = m.fits(0x8000, align=0x100000)
    assert all(addr % 0x100000 == 0 for _, addr in aligned)
    st = m.stats()
    assert st["vmalloc_range"]["largest_hole"] == max(h.size for h in holes)


def test_gaps_without_free_list() -> None:
    m = model("6.12")
    m.holes = None
    gaps = m.vmalloc_holes()
    assert gaps[0].start == V + 5 * PAGE


def test_stats() -> None:
    m = model("6.12")
    st = m.stats()
    assert st["areas"] == len(m.areas)
    assert st["by_kind"]["exec"]["count"] == 2
    assert st["by_caller"]["kvmalloc_node"]["pages"] == 1024
    assert st["lazy"]["pages"] == 9 and st["lazy"]["vmap_lazy_nr"] == 9
    # 2 online CPUs: fls(2) * 32 MiB / 4 KiB
    assert st["lazy"]["lazy_max_pages"] == 2 * 8192


def test_select_filters() -> None:
    m = model("6.12")
    assert {a.kind for a in m.select(kinds=["exec"])} == {"exec"}
    assert [a.start for a in m.select(caller="kvmalloc*")] == [V + 0x200000]
    assert all(a.size >= 0x100000 for a in m.select(min_size=0x100000))
    assert [a.start for a in m.select(lo=V + 0x10000, hi=V + 0x20001)] == [V + 0x10000, V + 0x20000]
    assert [a.kind for a in m.select(kinds=["lazy"])] == ["lazy"]


# -- /proc/vmallocinfo -------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_vmallocinfo_rules(layout: str) -> None:
    m = model(layout)
    lines = list(vmallocinfo_lines(m))
    f = FEATURES[layout]
    ram = [l for l in lines if l.endswith(" vm_map_ram")]
    # Both the big vm_map_ram and the block print as vm_map_ram (a block
    # has VMAP_RAM|VMAP_BLOCK on 6.3+, vm == NULL before).
    assert len(ram) == 2
    assert lines[-1].endswith("unpurged vm_area") or layout == "5.3"
    assert any(l.endswith("unpurged vm_area") for l in lines)
    unin = [l for l in lines if l.startswith(f"0x{V + 0x50000:016x}")]
    assert len(unin) == (0 if layout == "latest" else 1)
    io = next(l for l in lines if "ioremap" in l)
    assert io == (f"0x{V + 0x20000:016x}-0x{V + 0x22000:016x}    8192 "
                  "acpi_os_map_iomem+0x4b/0x200 phys=0x00000000fed00000 ioremap")
    starts = [int(l[2:18], 16) for l in lines if not l.endswith("unpurged vm_area")]
    if f.nodes:
        assert starts != sorted(starts)  # node by node
        assert any(" sparse" in l for l in lines)
    else:
        assert starts == sorted(starts)


def test_vmallocinfo_legacy_inline_unpurged() -> None:
    lines = list(vmallocinfo_lines(model("5.3")))
    i = next(i for i, l in enumerate(lines) if l.endswith("unpurged vm_area"))
    assert int(lines[i - 1][2:18], 16) < V + 0x60000 < int(lines[i + 1][2:18], 16)


def test_vmallocinfo_63_hides_vm_null_without_vmap_ram() -> None:
    sc = standard_scene("6.4")
    sc.areas.append(AreaSpec(V + 0x3000000, 2 * PAGE, None))
    k = build("6.4", sc)
    k.img.put("vmap_area", k.area_addr[V + 0x3000000], flags=0)  # mid-setup
    m = from_program(k.prog)
    assert m.find(V + 0x3000000).kind == "other"
    assert not any(l.startswith(f"0x{V + 0x3000000:016x}") for l in vmallocinfo_lines(m))


def test_vmallocinfo_numa_hook() -> None:
    m = model("6.12")
    lines = list(vmallocinfo_lines(m, numa=lambda vm: {0: vm.nr_pages} if vm.nr_pages else {}))
    assert any(l.endswith("pages=1024 vmalloc N0=1024") for l in lines)


def test_bench_scale_10k() -> None:
    """A 10k-area model builds in well under a second per 10k areas."""
    import time

    sc = Scene(areas=[AreaSpec(V + i * 0x3000, 2 * PAGE, VM_ALLOC, f"f{i % 50}") for i in range(10000)])
    k = build("6.12", sc, image_size=1 << 22)
    t = time.perf_counter()
    m = from_program(k.prog)
    el = time.perf_counter() - t
    assert len(m.areas) == 10000 and not m.warnings
    assert el < 3.0


def test_json_stream_matches_to_dict() -> None:
    m = from_program(build("6.12", standard_scene("6.12")).prog)
    areas = m.areas + m.lazy + m.pooled
    assert json.loads("".join(iter_areas_json(areas, 4096, chunk=2))) == [a.to_dict(4096) for a in areas]
    assert json.loads("".join(iter_areas_json([]))) == []
