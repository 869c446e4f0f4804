# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmalloc snapshots, diffs and top: synthetic kernels of every layout and
the demo fixture (a real 6.12 vmcore)."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from click.testing import CliRunner

import kcoretool
from kcoretool.api import Kernel
from kcoretool.cli import cli
from kcoretool.errors import KcoreToolError
from kcoretool.model.area import Area, VmStruct
from kcoretool.model.diff import caller_name, caller_totals, diff
from kcoretool.model.snapshot import VmallocSnapshot, area_to_json, iter_area_dicts, load_snapshot
from kcoretool.model.vmalloc import VmallocModel
from tests.synth.layouts import LAYOUTS, build, standard_scene

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, "fixtures", "demo", "demo-6.12.kdump")

_demo: dict = {}


def demo() -> VmallocSnapshot:
    if "s" not in _demo:
        _demo["s"] = kcoretool.open_kernel(DEMO).snapshot()
    return _demo["s"]


def with_areas(s: VmallocSnapshot, areas, **meta) -> VmallocSnapshot:
    m = s.model
    areas = sorted(areas)
    model = VmallocModel(layout=m.layout, release=m.release, page_size=m.page_size,
                         vmalloc_start=m.vmalloc_start, vmalloc_end=m.vmalloc_end,
                         modules_start=m.modules_start, modules_end=m.modules_end, areas=areas,
                         walk_order=list(areas), lazy=m.lazy, pooled=m.pooled, blocks=m.blocks,
                         holes=m.holes, lazy_nr=m.lazy_nr, lazy_max_pages=m.lazy_max_pages,
                         warnings=m.warnings, numa=m.numa)
    return dataclasses.replace(s, model=model, **meta)


def vm_area(start: int, pages: int, symbol: str, va: int, vm: int, caller: int = 0xFFFFFFFFC0001000) -> Area:
    size = (pages + 1) * 4096
    v = VmStruct(vm, start, size, 0x22, ("VM_ALLOC", "VM_UNINITIALIZED")[:1], pages, 0, 0, caller, symbol,
                 pages * 4096, 0xFFFF888000100000)
    return Area(start, start + size, "vmalloc", False, 0, 0, None, v, None, va)


# -- snapshots ---------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_every_layout(layout: str, tmp_path) -> None:
    k = Kernel(build(layout, standard_scene(layout)).prog)
    s = k.snapshot()
    assert (s.boot_id, s.kaslr_offset, s.time, s.live, s.source_kind) == (None, None, None, False, None)
    assert s.boot_id_source.startswith("unknown: the kernel has no sysctl_bootid symbol")
    p = tmp_path / "s.json"
    s.save(str(p))
    back = load_snapshot(str(p))
    assert back == s and back.file == str(p)
    m, b = s.model, back.model
    assert b == m
    assert b.areas == m.areas and b.lazy == m.lazy and b.pooled == m.pooled
    assert b.blocks == m.blocks and b.holes == m.holes and b.layout == m.layout
    assert [a.start for a in b.walk_order] == [a.start for a in m.walk_order]
    ids = {id(x) for x in b.areas + b.lazy + b.pooled}  # the same objects, not copies
    assert all(id(x) in ids for x in b.walk_order)
    assert b.stats() == m.stats()
    again = tmp_path / "again.json"
    back.save(str(again))
    assert again.read_bytes() == p.read_bytes()
    assert json.loads(p.read_text())["totals"] == m.stats()


def _write_v1(s: VmallocSnapshot, path) -> None:
    """The snapshot as format version 1 wrote it: one AREA object per area."""
    d = s.to_dict()
    ps = s.model.page_size
    d["format_version"] = 1
    for name in ("areas", "lazy", "pooled"):
        d[name] = [area_to_json(a, ps) for a in getattr(s.model, name)]
    path.write_text(json.dumps(d))


@pytest.mark.parametrize("layout", ["5.3", "6.12"])
def test_version_1_files_still_load(layout: str, tmp_path) -> None:
    s = Kernel(build(layout, standard_scene(layout)).prog).snapshot()
    p = tmp_path / "v1.json"
    _write_v1(s, p)
    back = load_snapshot(str(p))
    assert back == s and back.model.areas == s.model.areas and back.model.lazy == s.model.lazy
    assert [a.start for a in back.model.walk_order] == [a.start for a in s.model.walk_order]
    assert diff(back, s).unchanged == len(s.model.areas)
    # read as v1, written again as v2
    again = tmp_path / "v2.json"
    back.save(str(again))
    assert json.loads(again.read_text())["format_version"] == 2 and load_snapshot(str(again)) == s


def test_version_2_columns(tmp_path) -> None:
    s = demo()
    p = tmp_path / "s.json"
    s.save(str(p))
    d = json.loads(p.read_text())
    cols = d["areas"]["columns"]
    assert list(cols) == ["start", "size", "kind", "lazy", "va_flags", "node", "flags_node_id", "vmap_block",
                          "vmap_area", "vm_struct", "vm_addr", "vm_size", "vm_flags", "flag_names", "nr_pages",
                          "page_order", "phys_addr", "caller", "caller_symbol", "requested_size", "pages_array"]
    assert cols["start"]["delta"][0] == s.model.areas[0].start
    assert sum(cols["start"]["delta"]) == s.model.areas[-1].start
    assert sorted(cols["kind"]["table"]) == sorted({a.kind for a in s.model.areas})
    assert cols["lazy"] == {"runs": [[False, 125]]}  # long runs as [value, count]
    # one column per line
    text = p.read_text()
    assert all(f'\n"{c}":' in text for c in cols)
    ps = s.model.page_size
    assert list(iter_area_dicts(d["lazy"], ps)) == [area_to_json(a, ps) for a in s.model.lazy]
    back = load_snapshot(str(p))
    assert back.model.nr_areas == 125 and back.model.area_table() is not None
    assert caller_totals(back.model) == caller_totals(s.model)
    assert back.model.areas == s.model.areas and back.model.area_table() is None


def test_demo_snapshot_header_and_cli(tmp_path) -> None:
    out = tmp_path / "demo.json"
    r = CliRunner().invoke(cli, ["-c", DEMO, "vmalloc", "snapshot", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        f"{out}: 125 area(s), 2 lazy, 0 pooled, 1 block(s), 69 hole(s)",
        "release 6.12.117+deb12-amd64; boot id ? (unknown: never generated on that boot (nothing read "
        "/proc/sys/kernel/random/boot_id)); KASLR offset 0x11c00000",
        "time 2026-11-22 14:49:16 UTC (the kernel's clock in the dump (timekeeper xtime_sec))",
    ]
    assert os.listdir(tmp_path) == ["demo.json"]  # no temporary file left
    d = json.loads(out.read_text())
    assert (d["format"], d["format_version"], d["release"], d["kaslr_offset"], d["time"]) == (
        "kcoretool-vmalloc-snapshot", 2, "6.12.117+deb12-amd64", 0x11C00000, 1795358956)
    assert d["source"] == {"path": DEMO, "kind": "kdump", "live": False}
    # every field of a `vmalloc list --json` row is in each area, the exec
    # areas' owner (issue 12) included
    r = CliRunner().invoke(cli, ["-c", DEMO, "--json", "vmalloc", "list"])
    rows = json.loads(r.output)
    areas = list(iter_area_dicts(d["areas"], owners=d["exec_owners"]))
    assert len(rows) == len(areas) == d["areas"]["count"] == 125
    assert sum(row["owner"] is not None for row in rows) == len(d["exec_owners"]) == 23
    for row, area in zip(rows, areas):
        assert {k: area[k] for k in row} == row
    assert load_snapshot(str(out)) == demo()


def test_save_is_atomic(tmp_path, monkeypatch) -> None:
    s = demo()
    p = tmp_path / "s.json"
    p.write_text("old")

    def broken(self, f):
        f.write("{partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VmallocSnapshot, "write", broken)
    with pytest.raises(KcoreToolError) as e:
        s.save(str(p))
    assert str(e.value) == f"{p}: no space left on device; nothing was kept"
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["s.json"]


@pytest.mark.parametrize("text, message", [
    ("not json", "not a kcoretool vmalloc snapshot (not JSON: "),
    ('{"format": "other"}', 'not a kcoretool vmalloc snapshot (no "format": "kcoretool-vmalloc-snapshot")'),
    ('{"format": "kcoretool-vmalloc-snapshot", "format_version": 3}',
     "snapshot format version 3; this kcoretool reads 1 to 2 (upgrade kcoretool)"),
    ('{"format": "kcoretool-vmalloc-snapshot", "format_version": 1, "areas": [{"start": 1}]}',
     "damaged snapshot: no field 'end' in areas"),
    ('{"format": "kcoretool-vmalloc-snapshot", "format_version": 2, "areas": {"count": 1, "columns": {}}}',
     "damaged snapshot: no field 'start' in areas"),
    ('{"format": "kcoretool-vmalloc-snapshot", "format_version": 2, "areas": {"count": 2, "columns": '
     '{"start": {"delta": [1]}}}}',
     "damaged snapshot: bad value in areas (start: a column has 1 values, not 2)"),
    ('{"format": "kcoretool-vmalloc-snapshot", "format_version": 2, "areas": {"count": 2, "columns": '
     '{"start": {"delta": {"runs": [[1, -2]]}}}}}',
     "damaged snapshot: bad value in areas (start: a run of -2)"),
])
def test_bad_snapshot_files(tmp_path, capsys, text: str, message: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(KcoreToolError) as e:
        load_snapshot(str(p))
    assert str(e.value).startswith(f"{p}: {message}")
    from kcoretool.cli import main

    with pytest.raises(SystemExit) as ex:
        main(["vmalloc", "diff", str(p), str(p)])
    err = capsys.readouterr().err
    assert ex.value.code == 1 and err.startswith(f"kcoretool: {p}: {message}") and err.count("\n") == 1


def test_diff_cli_errors(tmp_path) -> None:
    from kcoretool.cli import main

    with pytest.raises(SystemExit) as e:
        main(["vmalloc", "diff", str(tmp_path / "nope.json"), DEMO])
    assert e.value.code == 1
    r = CliRunner().invoke(cli, ["vmalloc", "diff", "--kind", "bogus", DEMO, DEMO])
    assert r.exit_code == 2 and "unknown kind 'bogus'" in r.output


# -- diff ---------------------------------------------------------------------------


LEAK = "leaky_fn+0x10/0x40 [leakmod]"


def changed_pair():
    """A (the demo) and B: three areas from leaky_fn, one area freed, one
    address reused by another allocation, one area with more pages."""
    a = demo()
    areas = list(a.model.areas)
    vm_areas = [x for x in areas if x.kind == "vmalloc" and x.vm is not None]
    gone, reused, grown = vm_areas[3], vm_areas[4], vm_areas[5]
    top = max(x.end for x in areas if x.start < a.model.vmalloc_end)
    new = [vm_area(top + 0x10000 * i, 2 + i, LEAK, 0xFFFF888001000000 + i * 64, 0xFFFF888002000000 + i * 64)
           for i in range(3)]
    reuse = dataclasses.replace(reused, vmap_area=reused.vmap_area + 0x40,
                                vm=dataclasses.replace(reused.vm, address=reused.vm.address + 0x40,
                                                       caller_symbol="other_fn+0x1/0x2"))
    more = dataclasses.replace(grown, vm=dataclasses.replace(grown.vm, nr_pages=grown.vm.nr_pages + 1))
    b_areas = [x for x in areas if x not in (gone, reused, grown)] + new + [reuse, more]
    return a, with_areas(a, b_areas), (gone, reused, grown, new, reuse, more)


def test_diff_same_boot() -> None:
    a, b, (gone, reused, grown, new, reuse, more) = changed_pair()
    d = kcoretool.diff(a, b)
    assert d.same_boot and d.boot_note == "same boot as far as known (release and KASLR offset match; boot id unknown)"
    assert d.freed == sorted([gone, reused]) and d.new == sorted(new + [reuse])
    assert [(c.before, c.after, c.fields) for c in d.changed] == [(grown, more, ("pages",))]
    assert d.unchanged == len(a.model.areas) - 3
    lead = d.callers[0]
    assert (lead.caller, lead.kind, lead.areas_before, lead.areas_after, lead.pages_before,
            lead.pages_after, lead.bytes_before, lead.bytes_after) == (
        "leaky_fn [leakmod]", "vmalloc", 0, 3, 0, 9, 0, 12 * 4096)
    assert [c.caller for c in d.callers if c.caller == "other_fn"] == ["other_fn"]
    t = d.total
    assert (t.areas_before, t.areas_after) == (125, 127)
    assert t.pages_after - t.pages_before == 9 + 1 + reuse.vm.nr_pages - reused.vm.nr_pages - gone.vm.nr_pages
    # filters
    only = kcoretool.diff(a, b, caller="leaky*")
    assert only.new == new and only.freed == [] and only.changed == [] and len(only.callers) == 1
    assert kcoretool.diff(a, b, kinds=["vm_map_ram"]).callers == []
    big = kcoretool.diff(a, b, min_delta=12 * 4096)
    assert [c.caller for c in big.callers] == ["leaky_fn [leakmod]"] and big.new == new and big.freed == []


def test_diff_different_boots() -> None:
    a, b, _ = changed_pair()
    b = dataclasses.replace(b, kaslr_offset=0x2000000, boot_id="0f6b6a0e-1111-4222-8333-444455556666")
    d = diff(a, b)
    assert not d.same_boot
    assert d.boot_note == ("different boots (KASLR offset 0x11c00000 vs 0x2000000): "
                           "compared by caller and kind only")
    assert d.freed == d.new == d.changed == []
    assert d.callers[0].caller == "leaky_fn [leakmod]"
    j = d.to_dict()
    assert j["compared_by"] == "caller and kind" and j["freed"] is None and j["new"] is None


def test_diff_cli(tmp_path) -> None:
    a, b, (gone, reused, grown, new, reuse, more) = changed_pair()
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    a.save(str(pa))
    b.save(str(pb))
    r = CliRunner().invoke(cli, ["vmalloc", "diff", str(pa), str(pb), "--caller", "leaky_fn"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == (f"A  {pa} (snapshot of {DEMO}, kdump): 6.12.117+deb12-amd64, boot id ?, "
                        "KASLR 0x11c00000, 2026-11-22 14:49:16 UTC; 125 areas, 2965 pages, 270.2M")
    assert lines[2] == "same boot as far as known (release and KASLR offset match; boot id unknown)"
    assert "new (in B only): 3 area(s)" in lines
    assert any(line.split() == ["leaky_fn", "[leakmod]", "vmalloc", "0", "->", "3", "+3", "0", "->", "9", "+9",
                                "0", "->", "48K", "+48K"] for line in lines)
    assert lines[-1] == "total: areas 0 -> 3 (+3), pages 0 -> 9 (+9), size 0 -> 48K (+48K) (filtered)"
    r = CliRunner().invoke(cli, ["--json", "vmalloc", "diff", str(pa), str(pb)])
    j = json.loads(r.output)
    assert [x["start"] for x in j["new"]] == sorted(x.start for x in new + [reuse])
    assert j["changed"][0]["fields"] == ["pages"] and j["total"]["areas"] == {"before": 125, "after": 127,
                                                                            "delta": 2}
    # a core against a snapshot of itself: nothing changed
    r = CliRunner().invoke(cli, ["vmalloc", "diff", str(pa), DEMO, "--summary"])
    assert r.exit_code == 0 and "by caller: 0 changed" in r.output


def test_caller_name() -> None:
    assert caller_name("kct_grow+0x1f/0x40 [kcoretool_test]", 1) == "kct_grow [kcoretool_test]"
    assert caller_name("alloc_thread_stack_node+0x5c/0x190", 1) == "alloc_thread_stack_node"
    assert caller_name(None, 0xFFFFFFFF81000010) == "0xffffffff81000010"
    assert caller_name(None, 0) == "-"


# -- top ------------------------------------------------------------------------------


def fake_live(monkeypatch, models) -> None:
    seq = iter(models)
    monkeypatch.setattr(Kernel, "live", property(lambda self: True))
    monkeypatch.setattr(Kernel, "vmalloc", lambda self, refresh=False: next(seq))


def test_top_plain_text(monkeypatch) -> None:
    a, b, _ = changed_pair()
    fake_live(monkeypatch, [a.model, b.model, b.model])
    r = CliRunner().invoke(cli, ["-c", DEMO, "vmalloc", "top", "-n", "3", "-d", "0.01", "--caller", "leaky*"])
    assert r.exit_code == 0, r.output
    blocks = r.output.split("kcoretool vmalloc top - ")[1:]
    assert len(blocks) == 3 and " refresh 3/3 every 0.01s - 6.12.117+deb12-amd64 - took " in blocks[2]
    assert "leaky_fn" not in blocks[0]

    def row(block):
        return next(line.split() for line in block.splitlines() if line.startswith("leaky_fn"))

    assert row(blocks[1]) == ["leaky_fn", "[leakmod]", "vmalloc", "3", "9", "48K", "+3", "+9", "+48K", "+9"]
    assert row(blocks[2]) == ["leaky_fn", "[leakmod]", "vmalloc", "3", "9", "48K", "+3", "+9", "+48K", "0"]
    assert blocks[1].splitlines()[1].startswith("areas 3 (+3 since start, +3 since last), pages 9 (+9, +9)")


def test_top_sort_keys(monkeypatch) -> None:
    a, b, _ = changed_pair()
    fake_live(monkeypatch, [a.model, b.model])
    r = CliRunner().invoke(cli, ["-c", DEMO, "vmalloc", "top", "-n", "2", "-d", "0.01", "-o", "-caller"])
    assert r.exit_code == 0, r.output
    table = r.output.split("kcoretool vmalloc top - ")[2].splitlines()
    head = next(i for i, line in enumerate(table) if line.startswith("CALLER"))
    assert table[head].split()[0] == "CALLER^"
    names = [line.split()[0] for line in table[head + 2:] if line.strip()]
    assert names == sorted(names)
    fake_live(monkeypatch, [a.model])
    r = CliRunner().invoke(cli, ["-c", DEMO, "vmalloc", "top", "-n", "1", "-o", "cpu"])
    assert r.exit_code == 2 and "unknown sort key 'cpu'" in r.output


def test_top_needs_a_live_kernel() -> None:
    r = CliRunner().invoke(cli, ["-c", DEMO, "vmalloc", "top", "-n", "1"])
    assert r.exit_code == 1
    assert str(r.exception) == (f"vmalloc top watches a live kernel (/proc/kcore); {DEMO} is a saved core: "
                                "compare saved states with `vmalloc diff A B`")
