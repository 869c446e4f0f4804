# SPDX-License-Identifier: LGPL-2.1-or-later
"""
``kcoretool fleet scan`` over the real dumps of one lab boot (marker ``lab``):
QEMU's ELF, makedumpfile's ELF and its compressed kdump, all three of the
shared snapshot (no extra boot, no guest command).  Every row is readable,
names the kernel's release and one boot id for the three formats, and its
vmalloc totals by kind and caller and its task count are those
``vmalloc stats`` and ``task list`` print for the same dump with BTF.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab


def test_fleet_rows_of_one_boot_match_the_per_dump_commands(lab, tmp_path) -> None:
    paths = {k: str(v) for k, v in lab.snapshot.paths.items()}
    out = tmp_path / "fleet.jsonl"
    rc, _out, err = lab.kcoretool_host("fleet", "scan", *paths.values(), "-o", str(out), "-j", "2", timeout=900)
    assert rc == 0, err
    rows = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(rows) == sorted(paths.values())
    assert {r["status"] for r in rows.values()} == {"ok"}, [r.get("error") for r in rows.values()]
    formats = {k: rows[p]["format"] for k, p in paths.items()}
    assert formats == {"elf": "elf-vmcore", "elf_filtered": "elf-vmcore", "kdump": "kdump"}
    assert {r["release"] for r in rows.values()} == {lab.ground_truth["release"]}
    assert {r["debuginfo"] for r in rows.values()} == {"btf"}
    assert len({r["boot_id"] for r in rows.values()}) == 1  # one boot, whatever the format
    assert {r["panicking"] for r in rows.values()} == {False}  # dumps of a running guest
    for name, p in paths.items():
        row = rows[p]
        rc, text, err = lab.kcoretool_host("--debuginfo", "btf", "-c", p, "--json", "vmalloc", "stats")
        assert rc == 0, err
        stats = json.loads(text)
        assert row["vmalloc"]["areas"] == stats["areas"], name
        assert row["vmalloc"]["by_kind"] == {k: [v["count"], v["pages"], v["size"]]
                                             for k, v in stats["by_kind"].items()}, name
        assert row["vmalloc"]["callers"] == {k: [v["count"], v["pages"], v["size"]]
                                             for k, v in stats["by_caller"].items() if v["pages"]}, name
        assert row["vmalloc"]["lazy_max_pages"] == stats["lazy"]["lazy_max_pages"]
        assert row["vmalloc"]["largest_hole"] == stats["vmalloc_range"]["largest_hole"]
        assert row["vmalloc"]["blocks"] == stats["blocks"]
        # the test module's areas are there, by its callers' names
        assert any(c.startswith("kct_") for c in row["vmalloc"]["callers"]), name
        rc, text, err = lab.kcoretool_host("--debuginfo", "btf", "-c", p, "--json", "task", "list")
        assert rc == 0, err
        tasks = json.loads(text)
        assert row["tasks"]["count"] == len(tasks["tasks"]), name
        assert "module-text" in row["exec"] and row["exec"]["module-text"][1] > 0, name
        # the lab's snapshot is the clean guest exec audit judges clean (tests/lab/test_exec_audit.py)
        assert row["exec_audit"]["flags"] == 0 and row["exec_audit"]["unowned_bytes"] == 0, (name, row["exec_audit"])
    # the report over them: one release, three readable dumps, no outlier among one boot's formats
    rc, text, err = lab.kcoretool_host("fleet", "report", str(out), "--json")
    assert rc == 0, err
    rep = json.loads(text)
    assert [(r["release"], r["dumps"], r["ok"]) for r in rep["releases"]] == [(lab.ground_truth["release"], 3, 3)]
    assert rep["outliers"] == []


def test_fleet_names_the_panic(lab, lab_panicked, tmp_path) -> None:
    """A second, small guest of the same kernel crashes (sysrq-c: ``panic("sysrq
    triggered crash")``) and is dumped spinning in panic(): in all three
    formats the row says panicking with the log's reason, with BTF (no
    vmlinux), and the report lists the dumps as readable.  The guest held
    kcoretool_hide.ko's planted pages: each row's exec audit counts their
    four flags (tests/lab/test_exec_audit.py checks them one by one)."""
    line, paths = lab_panicked.line, {k: str(v) for k, v in lab_panicked.paths.items()}
    assert line.endswith("Kernel panic - not syncing: sysrq triggered crash"), line
    out = tmp_path / "fleet.jsonl"
    rc, _out, err = lab.kcoretool_host("fleet", "scan", *paths.values(), "-o", str(out), "-j", "2", timeout=900)
    assert rc == 0, err
    rows = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    got = {k: (rows[p]["status"], rows[p]["debuginfo"], rows[p]["panicking"], rows[p]["panic_reason"])
           for k, p in paths.items()}
    assert got == dict.fromkeys(paths, ("ok", "btf", True, "sysrq triggered crash")), got
    assert {r["release"] for r in rows.values()} == {lab.ground_truth["release"]}
    # QEMU took these dumps, not a kdump kernel: nothing wrote CRASHTIME into VMCOREINFO
    assert {r["crash_time"] for r in rows.values()} == {None}
    assert {(r["exec_audit"]["flags"], r["exec_audit"]["unowned_bytes"]) for r in rows.values()} == {(4, 8192)}
