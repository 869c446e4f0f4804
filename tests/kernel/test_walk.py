# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bounded walks: cycles, garbage pointers, caps, multi-level xarrays."""

from __future__ import annotations

import warnings

import pytest

from kcoretool.kernel import WalkLog, WalkWarning, list_walk, xarray_walk
from kcoretool.model import from_program
from tests.synth.layouts import (
    BBMAP_BITS,
    BLOCK_SIZE,
    PAGE,
    VMALLOC_START,
    AreaSpec,
    BlockSpec,
    Scene,
    build,
    standard_scene,
)


def many_areas(n: int, step: int = 0x10000) -> Scene:
    return Scene(areas=[AreaSpec(VMALLOC_START + i * step, 2 * PAGE) for i in range(n)])


def va_list(k, start):
    return k.area_addr[start] + k.img.offsetof("vmap_area", "list")


def test_list_walk_ok() -> None:
    k = build("6.1", many_areas(10))
    log = WalkLog()
    head = k.img.globals["vmap_area_list"][1]
    got = list(list_walk(k.prog, head, k.img.offsetof("vmap_area", "list"),
                         k.img.sizeof("vmap_area"), log, "t"))
    assert len(got) == 10 and not log


@pytest.mark.parametrize("layout", ["6.1", "6.12"])
def test_list_cycle_is_bounded(layout: str) -> None:
    k = build(layout, many_areas(20))
    starts = sorted(k.area_addr)
    # area 9 -> area 3: a cycle that never returns to the head
    k.img.w64(va_list(k, starts[9 if layout == "6.1" else 10]),
              va_list(k, starts[3 if layout == "6.1" else 4]))
    m = from_program(k.prog)
    assert any("cycle" in w for w in m.warnings)
    assert 0 < len(m.areas) < 20


def test_list_garbage_pointer() -> None:
    k = build("6.1", many_areas(10))
    starts = sorted(k.area_addr)
    k.img.w64(va_list(k, starts[4]), 0x4141414141414141)
    m = from_program(k.prog)
    assert len(m.areas) == 5
    assert any("invalid list pointer" in w for w in m.warnings)


def test_list_unreadable_pointer() -> None:
    k = build("6.1", many_areas(10))
    starts = sorted(k.area_addr)
    k.img.w64(va_list(k, starts[4]), 0xFFFF999900000000)  # kernel-looking, unmapped
    m = from_program(k.prog)
    assert len(m.areas) == 5
    assert any("unreadable" in w for w in m.warnings)


def test_list_limit() -> None:
    k = build("6.1", many_areas(50))
    m = from_program(k.prog, limit=10)
    assert len(m.areas) == 10
    assert any("limit" in w for w in m.warnings)


def test_warnings_are_emitted_when_asked() -> None:
    k = build("6.1", many_areas(10))
    starts = sorted(k.area_addr)
    k.img.w64(va_list(k, starts[4]), 0x4141414141414141)
    with pytest.warns(WalkWarning):
        from_program(k.prog, emit_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_program(k.prog)  # collected only, never issued


def test_bad_vm_pointer() -> None:
    k = build("6.1", many_areas(5))
    starts = sorted(k.area_addr)
    k.img.put("vmap_area", k.area_addr[starts[2]], vm=0xFFFF999900000000)
    m = from_program(k.prog)
    assert len(m.areas) == 5
    assert m.areas[2].kind == "other" and m.areas[2].vm is None
    assert any("unreadable" in w for w in m.warnings)


def test_absurd_node_count() -> None:
    k = build("6.12", many_areas(5))
    k.img.w32(k.img.globals["nr_vmap_nodes"][1], 0xFFFFFFFF)
    m = from_program(k.prog)
    assert any("nr_vmap_nodes" in w for w in m.warnings)


def test_bad_ranges_and_overlaps_warn() -> None:
    k = build("6.1", many_areas(5))
    starts = sorted(k.area_addr)
    k.img.put("vmap_area", k.area_addr[starts[1]], va_end=starts[1] - PAGE)
    k.img.put("vmap_area", k.area_addr[starts[3]], va_end=starts[4] + PAGE)
    m = from_program(k.prog)
    assert any("bad range" in w for w in m.warnings)
    assert any("overlaps" in w for w in m.warnings)


def blocks_scene(n: int, stride_blocks: int = 1) -> Scene:
    areas, blocks = [], []
    for i in range(n):
        start = VMALLOC_START + i * stride_blocks * BLOCK_SIZE
        areas.append(AreaSpec(start, BLOCK_SIZE, None, block=True))
        blocks.append(BlockSpec(start, cpu=i % 2, used=[(0, 1)], free=BBMAP_BITS - 1, dirty=0))
    return Scene(areas=areas, blocks=blocks)


@pytest.mark.parametrize("layout", ["6.1", "6.4", "6.12"])
def test_multilevel_xarray(layout: str) -> None:
    # indices up to 300*17: three levels of 64-slot nodes
    k = build(layout, blocks_scene(300, stride_blocks=17), image_size=1 << 26)
    m = from_program(k.prog)
    assert len(m.blocks) == 300 and not m.warnings
    assert all(a.kind == "vmap_block" and a.vmap_block is not None for a in m.areas)


def test_xarray_cycle_and_bad_shift() -> None:
    k = build("6.1", blocks_scene(100))
    xa = k.img.globals["vmap_blocks"][1]
    head = k.prog.read_u64(xa + 8)
    node = head - 2
    slots = k.img.offsetof("xa_node", "slots")
    # first child points back at the root node
    k.img.w64(node + slots, head)
    log = WalkLog()
    got = list(xarray_walk(k.prog, xa, log, "t"))
    assert any("cycle" in w or "shift" in w for w in log.messages)
    assert 0 < len(got) < 100
    # a garbage shift at the root
    k2 = build("6.1", blocks_scene(100))
    xa2 = k2.img.globals["vmap_blocks"][1]
    k2.img.w8(k2.prog.read_u64(xa2 + 8) - 2, 5)
    log = WalkLog()
    assert list(xarray_walk(k2.prog, xa2, log, "t")) == []
    assert "bad shift" in log.messages[0]


def test_xarray_single_entry() -> None:
    k = build("6.1", blocks_scene(1))
    m = from_program(k.prog)
    assert len(m.blocks) == 1 and m.areas[0].kind == "vmap_block"


def test_warning_cap() -> None:
    log = WalkLog(cap=3)
    for i in range(10):
        log.warn(str(i))
    assert log.summary() == ["0", "1", "2", "... and 7 more warnings"]


def test_llist_cycle_54() -> None:
    sc = standard_scene("5.4")
    sc.lazy = [AreaSpec(VMALLOC_START + 0x5000000 + i * 0x10000, 2 * PAGE) for i in range(5)]
    k = build("5.4", sc)
    po = k.img.offsetof("vmap_area", "purge_list")
    starts = sorted(a.start for a in sc.lazy)
    # last node -> first node
    k.img.w64(k.area_addr[starts[-1]] + po, k.area_addr[starts[0]] + po)
    m = from_program(k.prog)
    assert any("vmap_purge_list: cycle" in w for w in m.warnings)
    assert len(m.lazy) == 5


def test_garbage_block_counters() -> None:
    sc = standard_scene("6.1")
    sc.blocks[0].free = 10**6
    m = from_program(build("6.1", sc).prog)
    b = m.blocks[0]
    assert b.used is None and b.used_source == "unknown"
    assert any("out of range" in n for n in b.notes)


def test_used_map_disagrees_with_counters() -> None:
    sc = standard_scene("6.12")
    sc.blocks[0].free = 5
    m = from_program(build("6.12", sc).prog)
    assert any("used_map has" in n for n in m.blocks[0].notes)


def test_bad_percpu_offset() -> None:
    k = build("6.12", standard_scene("6.12"))
    pco = k.img.globals["__per_cpu_offset"][1]
    k.img.w64(pco + 8, 0x100000000000)  # CPU 1's per-CPU area is garbage
    m = from_program(k.prog)
    assert any("vmap_block_queue[1]" in w for w in m.warnings)
    # the block lived in CPU 1's xarray: its area is still classified
    assert m.find(VMALLOC_START + 0xC00000).kind == "vmap_block"


def test_pooled_and_lazy_limits() -> None:
    sc = standard_scene("6.12")
    sc.pooled = [AreaSpec(VMALLOC_START + 0x6000000 + i * 0x10000, 4 * PAGE, None, vn_id=0)
                 for i in range(30)]
    m = from_program(build("6.12", sc).prog, limit=40)
    assert len(m.pooled) <= 40


def _node_lists(k):
    """{node: [area start, ...]} in each 6.9+ busy list's order."""
    img = k.img
    arr = img.r64(img.globals["vmap_nodes"][1])
    lst = img.offsetof("vmap_area", "list")
    out = {}
    for i in range(k.scene.nodes):
        head = arr + i * img.sizeof("vmap_node") + img.offsetof("vmap_node", "busy") + img.offsetof("rb_list", "head")
        pos, starts = img.r64(head), []
        while pos != head:
            starts.append(img.r64(pos - lst + img.offsetof("vmap_area", "va_start")))
            pos = img.r64(pos)
        out[i] = (head, starts)
    return out


def test_node_lists_merge_in_address_order_and_keep_the_walk_order() -> None:
    # 40 areas over 3 nodes (16-page zones): the lists interleave
    k = build("6.12", Scene(areas=[AreaSpec(VMALLOC_START + i * 4 * PAGE, 2 * PAGE) for i in range(40)], nodes=3))
    lists = _node_lists(k)
    m = from_program(k.prog)
    assert [a.start for a in m.areas] == sorted(k.area_addr)
    assert [a.start for a in m.walk_order] == [s for i in sorted(lists) for s in lists[i][1]]
    assert m.warnings == []


def test_a_node_list_out_of_order_stops_that_walk() -> None:
    k = build("6.12", Scene(areas=[AreaSpec(VMALLOC_START + i * 4 * PAGE, 2 * PAGE) for i in range(40)], nodes=3))
    head, starts = _node_lists(k)[1]
    lst = k.img.offsetof("vmap_area", "list")
    swapped = starts[:]
    swapped[0], swapped[-1] = swapped[-1], swapped[0]
    k._link(head, [k.area_addr[s] + lst for s in swapped])
    m = from_program(k.prog)
    # node 1 walks its last area first and stops at the next (not above it): the
    # merged areas are the rest, still in address order
    assert [a.start for a in m.areas] == sorted(set(k.area_addr) - set(starts[:-1]))
    assert len(m.warnings) == 1 and "vmap_nodes[1].busy" in m.warnings[0] and "stopped after 1" in m.warnings[0]
