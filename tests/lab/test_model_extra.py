# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Extra lab checks of the vmalloc model: agreement with crash 8.0.2's
``kmem -v`` on 6.1, and the tiling of [VMALLOC_START, VMALLOC_END) by busy,
lazy, pooled areas and free holes on every dump format.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.lab.config import SERIES_BY_NAME

pytestmark = pytest.mark.lab

# One opened program per snapshot and format, shared with the model's lab tests.
from tests.lab.test_vmalloc import _prog_model  # noqa: E402

_ROW = re.compile(r"^\s*([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+-\s+([0-9a-f]+)\s+(\d+)\s*$")


def _crash_kmem_v(vmlinux: str, core: str):
    """(rows, output) of ``crash -s vmlinux core`` fed ``kmem -v``."""
    p = subprocess.run(["crash", "-s", vmlinux, core], input="kmem -v\nq\n",
                       capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    rows = set()
    for line in out.splitlines():
        m = _ROW.match(line)
        if m:
            va, vm, s, e, size = m.groups()
            rows.add((int(s, 16), int(e, 16), int(size), int(va, 16), int(vm, 16)))
    return rows, out


@pytest.mark.parametrize("which", ["elf", "kdump", "elf_filtered"])
def test_crash_kmem_v_agrees(lab, which) -> None:
    if not SERIES_BY_NAME[lab.kernel].expect.crash:
        pytest.skip("crash 8.0.2 predates the 6.9 vmap_nodes layout")
    if shutil.which("crash") is None:
        pytest.skip("crash not installed")
    _, m = _prog_model(lab, which)
    rows, out = _crash_kmem_v(str(lab.vmlinux), str(lab.snapshot.paths[which]))
    if not rows:
        err = next((l for l in out.splitlines() if l.startswith("crash:") or "error" in l.lower()),
                   out.strip().splitlines()[0] if out.strip() else "no output")
        pytest.skip(f"crash cannot read the {which} dump: {err.strip()}")
    ours = {(a.start, a.end, a.end - a.start, a.vmap_area, a.vm.address)
            for a in m.areas if a.vm is not None}
    assert rows == ours
    # sanity: the module's vmalloc_16p is there with its guard page
    t = next(t for t in lab.snapshot.module["areas"] if t["name"] == "vmalloc_16p")
    assert any(r[0] == t["addr"] and r[2] == t["size"] + 4096 for r in rows)


@pytest.mark.parametrize("which", ["elf", "kdump", "elf_filtered"])
def test_tiling(lab, which) -> None:
    _, m = _prog_model(lab, which)
    lo, hi = m.vmalloc_start, m.vmalloc_end
    used = [(a.start, a.end, "busy") for a in m.areas]
    used += [(a.start, a.end, "lazy") for a in m.lazy]
    used += [(a.start, a.end, "pooled") for a in m.pooled]
    if not SERIES_BY_NAME[lab.kernel].expect.nodes:
        assert not m.pooled
    inside = [u for u in used if u[0] < hi and u[1] > lo]
    # nothing straddles the range ends (modules live in their own range)
    assert all(lo <= s and e <= hi for s, e, _ in inside), [u for u in inside if u[0] < lo or u[1] > hi]
    holes = [(h.start, h.end, "hole") for h in m.vmalloc_holes()]
    pieces = sorted(inside + holes)
    assert pieces[0][0] == lo and pieces[-1][1] == hi
    bad = [(x, y) for x, y in zip(pieces, pieces[1:]) if x[1] != y[0]]
    assert bad == []
    assert all(s < e for s, e, _ in pieces)
    # holes are maximal: two holes never touch
    assert not [(x, y) for x, y in zip(pieces, pieces[1:]) if x[2] == y[2] == "hole"]
