# SPDX-License-Identifier: LGPL-2.1-or-later
"""PackedAreaTable: rows in, the same rows (and the same JSON) out; sorting
in place; the kernel's walk order kept."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kcoretool.model.area import AREA_ROW_FIELDS, KINDS, row_area
from kcoretool.model.area_json import iter_areas_json, iter_rows_json
from kcoretool.model.packed import PackedAreaTable

U64 = st.integers(0, 2**64 - 1)
U32 = st.integers(0, 2**32 - 1)


def _opt(s):
    return st.none() | s


@st.composite
def rows(draw):
    head = (draw(U64), draw(U64), draw(st.sampled_from(KINDS)), draw(st.booleans()), draw(_opt(U64)),
            draw(_opt(U32)), draw(_opt(st.integers(0, 255))), draw(_opt(U64)), draw(U64))
    if not draw(st.booleans()):
        return head + (None,) * 12
    fl = draw(st.integers(0, 15))
    caller = draw(st.integers(0, 7))
    # equal flags have equal names and equal callers equal symbols, as in one model
    names = tuple(f"VM_{b}" for b in range(4) if fl >> b & 1)
    sym = None if caller == 0 else f"fn{caller}+0x10/0x100"
    return head + (draw(U64), draw(U64), draw(U64), fl, names, draw(U32), draw(_opt(U32)), draw(U64),
                   caller, sym, draw(_opt(U64)), draw(U64))


@settings(max_examples=200, deadline=None)
@given(st.lists(rows(), max_size=30))
def test_rows_round_trip_and_json(rs):
    t = PackedAreaTable({}, {})
    t.extend(map(t.record_of, rs))
    assert len(t) == len(rs)
    assert list(t.rows()) == rs
    assert [t.row(i) for i in range(len(rs))] == rs
    # the record writer's JSON is Area.to_dict's
    areas = [row_area(r) for r in rs]
    want = [a.to_dict(4096) for a in areas]
    assert json.loads("".join(iter_rows_json(t.rows(), 4096))) == want
    assert json.loads("".join(iter_areas_json(areas, 4096))) == want
    assert json.loads("".join(iter_rows_json(iter(rs), 4096))) == want


def _table(starts):
    t = PackedAreaTable({}, {})
    t.extend(t.record_of((s, s + 4096, "vm_map_ram", False, 1, s % 3, None, None, 0x1000 + i) + (None,) * 12)
             for i, s in enumerate(starts))
    return t


def test_sort_in_place_keeps_the_walk_order():
    rng = random.Random(5)
    starts = [4096 * k for k in range(2000)]
    rng.shuffle(starts)
    t = _table(starts)
    t.sort()
    assert list(t.column("start")) == sorted(starts)
    assert [r[0] for r in t.rows()] == sorted(starts)
    index = t.walk_index()
    rows = list(t.rows())
    assert [rows[i][0] for i in index] == starts  # the order they were added in
    assert [r[AREA_ROW_FIELDS.index("vmap_area")] for r in rows] == [0x1000 + starts.index(s) for s in sorted(starts)]


def test_sort_keeping_some():
    t = _table([3 * 4096, 1 * 4096, 2 * 4096, 0])
    t.sort(keep=[0, 1, 3])
    assert [r[0] for r in t.rows()] == [0, 4096, 3 * 4096]
    assert t.walk_index() == [2, 1, -1, 0]


def test_walked_by_node():
    # rows in address order, each from node start % 3; the kernel walked
    # node 0's, then node 1's, then node 2's
    starts = [4096 * k for k in range(12)]
    t = _table(starts)
    t.walked_by_node()
    rows = list(t.rows())
    walk = [rows[i][0] for i in t.walk_index()]
    assert walk == sorted(starts, key=lambda s: (s % 3, s))


def test_columns_and_kinds():
    t = _table([0, 4096, 8192])
    assert list(t.column("end")) == [4096, 8192, 12288]
    assert list(t.column("vmap_area")) == [0x1000, 0x1001, 0x1002]
    assert t.column("kind") == ["vm_map_ram"] * 3
    assert t.has_kind("vm_map_ram") and not t.has_kind("vmalloc") and not t.has_kind("nonsense")
    assert AREA_ROW_FIELDS[2] == "kind"


def _area(start, sym, nr=1, node=None, kind="vmalloc"):
    from kcoretool.model.area import Area, VmStruct
    return Area(start, start + 8192, kind, False, None, node, None,
                VmStruct(0x10, start, 8192, 2, ("VM_ALLOC",), nr, None, 0, 0xffffffffc0001000, sym, None, 0),
                None, 0x20)


def test_json_of_one_caller_address_in_two_modules():
    # areas of two times (a diff): a module unloaded, another loaded at its address
    areas = [_area(0x1000, "f_old+0x1/0x10 [modA]"), _area(0x100000, "g_new+0x1/0x10 [modB]")]
    got = json.loads("".join(iter_areas_json(areas)))
    assert [r["caller_symbol"] for r in got] == ["f_old+0x1/0x10 [modA]", "g_new+0x1/0x10 [modB]"]
    assert got == [a.to_dict() for a in areas]


def test_json_of_odd_hand_built_areas():
    areas = [_area(0x1000, "x", nr=-1), _area(0x3000, "x", node=2**32), _area(0x5000, None, kind="mine")]
    assert json.loads("".join(iter_areas_json(areas))) == [a.to_dict() for a in areas]


def test_limit_keeps_the_lowest_addresses_and_says_so():
    from kcoretool.model import from_program
    from tests.synth.layouts import build, standard_scene

    k = build("5.4", standard_scene("5.4"))
    m = from_program(k.prog, limit=5)
    assert m.nr_areas == 5 and "vmap_area_list: stopped after 5 entries (limit)" in m.warnings
    k = build("6.12", standard_scene("6.12"))
    every = sorted(a.start for a in from_program(k.prog).areas)
    m = from_program(k.prog, limit=5)
    assert [a.start for a in m.areas] == every[:5]
    assert "busy areas: stopped after 5 (limit); the lowest addresses are kept" in m.warnings


def test_totals_are_of_busy_areas_only():
    from kcoretool.model import from_program
    from kcoretool.model.diff import caller_totals
    from tests.synth.layouts import build, standard_scene

    m = from_program(build("6.12", standard_scene("6.12")).prog)
    assert m.lazy and m.pooled
    assert caller_totals(m, ["lazy", "pooled"]) == {}
    assert m.summary_counts(kinds=["lazy"]) == {}


def test_an_unsigned_int_at_its_top_is_kept():
    from kcoretool.model import from_program
    from tests.synth.layouts import build, standard_scene

    k = build("6.12", standard_scene("6.12"))
    vm = next(iter(k.vm_addr.values()))
    k.img.put("vm_struct", vm, nr_pages=0xFFFFFFFF)
    m = from_program(k.prog)
    assert [a.vm.nr_pages for a in m.areas if a.vm is not None and a.vm.address == vm] == [0xFFFFFFFF]
