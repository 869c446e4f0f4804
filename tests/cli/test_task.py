# SPDX-License-Identifier: LGPL-2.1-or-later
"""The task commands on the demo fixture (a real 6.12 guest, BTF only):
exact output a user sees, and one-line errors."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from click.testing import CliRunner

from kcoretool.cli import cli

CORE = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "demo-6.12.kdump"


def run(*args: str):
    return CliRunner().invoke(cli, ["-c", str(CORE), "--debuginfo", "btf", *args], catch_exceptions=False)


def test_task_list_user():
    r = run("task", "list", "--user")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[2].split() == ["1", "1", "0", "S", "13.9M", "20.4M", "68", "0xff2aaecb81254200",
                                                "python"]
    assert r.stdout.splitlines()[-1] == "1 process; layout 6.4-6.14"


def test_task_list_json_counts():
    d = json.loads(run("--json", "task", "list").stdout)
    assert len(d["tasks"]) == 59 and d["warnings"] == []
    assert sum(not t["kthread"] for t in d["tasks"]) == 1


def test_task_vmas_maps_lines():
    r = run("task", "vmas", "1", "--format", "maps")
    assert r.exit_code == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert len(lines) == 68
    assert lines[0] == ("5644ef8e1000-5644ef8e2000 r--p 00000000 00:18 53449                      "
                        "/root/.pyenv/versions/3.11.7/bin/python3.11")
    assert "564513845000-564513ccd000 rw-p 00000000 00:00 0                          [heap]" in lines
    assert "7fae14682000-7fae14882000 rw-p 00000000 00:00 0 " in lines
    assert "7fae16b2d000-7fae16b2f000 r-xp 00000000 00:00 0                          [vdso]" in lines
    assert lines[-1] == "7fff31c4e000-7fff31c6f000 rw-p 00000000 00:00 0                          [stack]"


def test_read_pid_states_and_notes():
    r = run("read", "--pid", "1", "--map", "0x7fae14682000", "0x5000")
    assert r.exit_code == 0
    rows = [ln.split() for ln in r.stdout.splitlines()[2:]]
    assert [row[3] for row in rows] == ["not-present", "data", "data"]
    assert r.stderr == ("kcoretool: note: 0x7fae14682000-0x7fae14684000 (2 pages) read as zeros: not-present -- "
                        "zeros: the page tables map nothing here (never faulted in)\n")


def test_whatis_pid():
    r = run("whatis", "--pid", "1", "0x564513845010")
    assert r.stdout == ("0x564513845010: pid 1 VMA 0x564513845000-0x564513ccd000 rw-p +0x10 [heap] lock unlocked\n"
                        "0x564513845010: page data, phys 0x909c010\n")
    r = run("whatis", "--pid", "1", "0x1000")
    assert r.stdout == "0x1000: no VMA of pid 1 covers it\n"


def _main(*args: str):
    return subprocess.run([sys.executable, "-m", "kcoretool", "-c", str(CORE), "--debuginfo", "btf", *args],
                          capture_output=True, text=True, timeout=300)


def test_errors_are_one_line():
    r = _main("task", "vmas", "2")
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", "kcoretool: pid 2 (kthreadd) is a kernel thread: it has no user memory\n")
    r = _main("task", "vmas", "99999")
    assert (r.returncode, r.stderr) == (1, "kcoretool: no task with pid 99999; `kcoretool task list` shows them\n")
    r = _main("read", "--pid", "1", "--physical", "0x1000", "16")
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        "Error: --pid reads go through the task's page tables; drop --physical/--via")
