# SPDX-License-Identifier: LGPL-2.1-or-later
"""The area record is declared once (kcoretool.model.area): its slots, row,
packed record, JSON, snapshot columns and CLI fields all follow from the
declaration.  Adding a field to Area or VmStruct is one annotation plus a
test here."""

from __future__ import annotations

import json

from kcoretool.model import snapshot
from kcoretool.model.area import (
    AREA_ROW_FIELDS,
    FIELDS,
    JSON_FIELDS,
    ROW_AT,
    Area,
    FreeHole,
    VmapBlock,
    VmStruct,
    area_row,
    row_area,
    row_getter,
)
from kcoretool.model.area_json import iter_areas_json, iter_rows_json
from kcoretool.model.packed import AREA_RECORD, BIT, RECORD_FIELDS, PackedAreaTable

VM = VmStruct(address=0xFFFF888000ABC000, addr=0xFFFFC90000100000, size=0x5000, flags=0x22,
              flag_names=("VM_ALLOC",), nr_pages=4, page_order=0, phys_addr=0, caller=0xFFFFFFFF81234567,
              caller_symbol="kvmalloc_node+0x4b/0x200", requested_size=0x3000, pages_array=0xFFFF888000DEF000)
WITH_VM = Area(start=0xFFFFC90000100000, end=0xFFFFC90000105000, kind="vmalloc", lazy=False, va_flags=0x1,
               node=2, flags_node_id=None, vm=VM, vmap_block=None, vmap_area=0xFFFF888000123400)
BLOCK = Area(start=0xFFFFC90000200000, end=0xFFFFC90000600000, kind="vmap_block", lazy=True, va_flags=None,
             node=None, flags_node_id=7, vm=None, vmap_block=0xFFFF888000777000, vmap_area=0xFFFF888000123440)


def test_one_name_per_field():
    """The row's names: the area's own fields, then its VmStruct's; each
    once; the area JSON and the snapshot columns use the same names (the
    JSON's historical "flags" and "pages" aside, the snapshot's "size")."""
    assert AREA_ROW_FIELDS == (
        "start", "end", "kind", "lazy", "va_flags", "node", "flags_node_id", "vmap_block", "vmap_area",
        "vm_struct", "vm_addr", "vm_size", "vm_flags", "flag_names", "nr_pages", "page_order", "phys_addr",
        "caller", "caller_symbol", "requested_size", "pages_array")
    assert len(set(AREA_ROW_FIELDS)) == len(AREA_ROW_FIELDS)
    own = [f.attr for f in FIELDS if not f.vm]
    assert own == [s for s in Area.__slots__ if s != "vm"]
    assert [f.attr for f in FIELDS if f.vm] == list(VmStruct.__slots__)
    json_names = {f.json_key: f.name for f in JSON_FIELDS if f is not None and f.json_key != f.name}
    assert json_names == {"flags": "flag_names", "pages": "nr_pages"}
    assert [c for c, _ in snapshot.COLUMNS] == ["size" if n == "end" else n for n in AREA_ROW_FIELDS]
    assert [r[0] for r in snapshot._ROW_RULES] == list(AREA_ROW_FIELDS[2:])


def test_row_and_record_follow_the_declaration():
    for a in (WITH_VM, BLOCK):
        r = area_row(a)
        assert len(r) == len(AREA_ROW_FIELDS)
        assert row_area(r) == a
        assert row_getter("vmap_area", "kind")(r) == (a.vmap_area, a.kind)
        t = PackedAreaTable({}, {})
        rec = t.record_of(r)
        assert len(rec) == len(RECORD_FIELDS) == len(AREA_RECORD.unpack(AREA_RECORD.pack(*rec)))
        t.extend([rec])
        assert t.row(0) == r
    # one presence bit per field that may be None, the vm_struct's, and the bool
    assert set(BIT) == {f.name for f in FIELDS if f.optional and f.col.code} | {"vm_struct", "lazy"}
    # stored fields: all but the looked-up ones (flag names, symbol) and the bool
    assert RECORD_FIELDS[:-1] == tuple(f.name for f in FIELDS if f.col.code not in ("", "bit"))


def test_json_writer_and_to_dict_agree():
    want = [a.to_dict(4096) for a in (WITH_VM, BLOCK)]
    assert list(want[0]) == [f.json_key if f is not None else "size" for f in JSON_FIELDS]
    assert want[0]["flags"] == ["VM_ALLOC"] and want[0]["pages"] == 4 and want[0]["phys_addr"] is None
    assert want[1]["flags"] == [] and want[1]["pages"] == 0x400 and want[1]["vm_struct"] is None
    assert json.loads("".join(iter_areas_json([WITH_VM, BLOCK]))) == want
    t = PackedAreaTable({}, {})
    t.extend(t.record_of(area_row(a)) for a in (WITH_VM, BLOCK))
    text = "".join(iter_rows_json(t.rows(), 4096))
    assert json.loads(text) == want
    # byte for byte what json.dumps gives, one object per line
    assert text == "[" + "\n,".join(json.dumps(d, separators=(",", ":")) for d in want) + "]"


def test_snapshot_round_trip_keeps_every_field(tmp_path):
    d = snapshot.area_to_json(WITH_VM)
    assert {"vm_addr", "vm_size", "pages_array"} <= set(d)
    assert snapshot.area_from_json(d) == WITH_VM
    assert snapshot.area_from_json(snapshot.area_to_json(BLOCK)) == BLOCK


def test_reprs_show_addresses_in_hex():
    assert repr(WITH_VM).startswith("Area(start=0xffffc90000100000, end=0xffffc90000105000, kind='vmalloc',")
    assert "vmap_area=0xffff888000123400)" in repr(WITH_VM)
    assert "VmStruct(address=0xffff888000abc000, addr=0xffffc90000100000, size=20480, flags=34," in repr(WITH_VM)
    assert "caller=0xffffffff81234567" in repr(VM)
    assert repr(FreeHole(0x1000, 0x3000)) == "FreeHole(start=0x1000, end=0x3000)"
    b = VmapBlock(0x1000, 0x2000, 0xFFFF888000777000, 0, "vmap_block.cpu", 1, 0, 0, 0, 1, ((0, 0),), "used_map", ())
    assert repr(b).startswith("VmapBlock(start=0x1000, end=0x2000, address=0xffff888000777000, cpu=0,")


def test_row_at_names_every_field():
    assert [ROW_AT[n] for n in AREA_ROW_FIELDS] == list(range(len(AREA_ROW_FIELDS)))
