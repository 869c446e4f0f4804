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
    assert first_difference(base, moved) == "struct a.n (offset, type): was [4, 'int'], now [8, 'int']"
    gone = json.loads(json.dumps(base))
    gone["globals"]["g"] = None
    assert first_difference(base, gone) == "type of global g: was int, now None"
    # read by one run only (this boot's data took another path): no drift
    other = json.loads(json.dumps(base))
    del other["members"]["struct a"]["n"]
    other["members"]["struct b"] = {"x": [0, "int"]}
    assert first_difference(base, other) is None


_HIDE = r"""
import sys, drgn, kcoretool
k = kcoretool.open_kernel(sys.argv[1], sys.argv[2], debuginfo="dwarf")
real = k.prog.type("struct vmap_area")
fake = k.prog.struct_type("vmap_area", real.size, [m for m in real.members if m.name != "va_start"])
k.prog.register_type_finder("renamed", lambda p, kinds, name, fn: fake if name == "vmap_area" else None,
                            enable_index=0)
try:
    k.vmalloc()
except kcoretool.KcoreToolError as e:
    print(type(e).__name__, e)
"""


def test_unknown_layout_is_named_not_blamed_on_the_dump(lab):
    """The lab's real dump, its vmap_area made to lack va_start (as a kernel
    that renamed it would): the one line names the release and the member."""
    cp = subprocess.run([sys.executable, "-c", _HIDE, str(lab.snapshot.kdump), str(lab.vmlinux)],
                        capture_output=True, text=True, timeout=600, cwd=str(REPO_ROOT))
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert cp.stdout.strip() == (
        f"LayoutError kcoretool does not know this kernel's vmalloc layout ({lab.release}): struct vmap_area "
        "has no member va_start -- please report (the traceback shows where)")
