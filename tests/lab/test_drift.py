"""Drift shows up as one line (issue 21): every struct member, type and
global kcoretool's layouts read, per lab kernel, against what was recorded
(tests/lab/layouts/<series>.json).  A new kernel, or a Debian update that
moves a member, fails here naming it; record with
``KCORETOOL_LAB_RECORD_LAYOUTS=1 pytest -m lab tests/lab/test_drift.py``
after checking that the views still pass on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.lab.config import REPO_ROOT
from tests.lab.layouts import first_difference, path_for


def test_layout_reads_match_the_record(lab):
    cp = subprocess.run([sys.executable, "-m", "tests.lab.layouts", str(lab.snapshot.elf), str(lab.vmlinux)],
                        capture_output=True, text=True, timeout=600, cwd=str(REPO_ROOT))
    assert cp.returncode == 0, cp.stderr[-2000:]
    got = json.loads(cp.stdout)
    # Every view read something: the record is not an empty shell.
    assert {"struct vmap_area", "struct vm_struct", "struct vm_area_struct"} <= set(got["members"])
    path = path_for(lab.kernel)
    if os.environ.get("KCORETOOL_LAB_RECORD_LAYOUTS"):
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        return
    if not path.exists():
        pytest.fail(f"no recorded layout for {lab.kernel} ({path.name}); record it with "
                    "KCORETOOL_LAB_RECORD_LAYOUTS=1 pytest -m lab tests/lab/test_drift.py", pytrace=False)
    want = json.loads(path.read_text())
    diff = first_difference(want, got)
    if diff is not None:
        pytest.fail(f"Linux {got['release']} (recorded: {want['release']}): {diff}", pytrace=False)


def test_first_difference_names_the_entry():
    base = {"release": "x", "types": {"struct a": 8}, "globals": {"g": "int"},
            "members": {"struct a": {"m": [0, "int"], "n": [4, "int"]}}}
    assert first_difference(base, json.loads(json.dumps(base))) is None
    moved = json.loads(json.dumps(base))
    moved["members"]["struct a"]["n"] = [8, "int"]
    assert first_difference(base, moved) == "struct a.n (offset, type): was [0, 'int'], now [8, 'int']".replace(
        "[0, 'int']", "[4, 'int']")
    gone = json.loads(json.dumps(base))
    gone["globals"]["g"] = None
    assert first_difference(base, gone) == "type of global g: was int, now None"
