# SPDX-License-Identifier: LGPL-2.1-or-later
"""The area JSON writer (kcoretool.model.area_json): the same objects as
Area.to_dict, whatever the rows."""

from __future__ import annotations

import json

from kcoretool.model.area_json import iter_areas_json


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
