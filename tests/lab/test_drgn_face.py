"""kcoretool inside drgn on the real kernels (issue 15), live and on every
dump format: a bare drgn.Program through ``from_program`` (BTF, no vmlinux)
gives exactly what ``open_kernel`` with the vmlinux's DWARF gives, module
callers included; plain ``drgn -c DUMP`` with no vmlinux runs drgn's own
helpers through kcoretool's plugin; the plugin loads nothing when DWARF is
there; the ``kcoretool`` drgn command prints what the CLI prints.

One process per source (tests/lab/in_guest/drgn_face.py), run on the host
for the dumps and inside the guest for /proc/kcore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest

from tests.lab.config import REPO_ROOT

pytestmark = pytest.mark.lab

DUMPS = ("elf", "kdump", "elf_filtered")
SCRIPT = [sys.executable, "-m", "tests.lab.in_guest.drgn_face"]


def _check(res: Dict[str, Any], live: bool) -> None:
    assert res["bare"]["debuginfo"]["kind"] == "btf"
    assert res["bare"]["debuginfo"]["reason"] == "loaded by kcoretool's drgn plugin"
    assert res["dwarf"]["debuginfo"]["kind"] == "dwarf"
    assert res["bare"]["areas"] == res["dwarf"]["areas"]
    callers = [a["caller_symbol"] for a in res["bare"]["areas"] if a["caller_symbol"]]
    assert any(c.endswith("[kcoretool_test]") for c in callers), "module callers are named"
    h = res["helpers"]
    assert h["jiffies"] > 0 and h["pid1_frame"]
    if not live:
        assert h["tasks"] == h["kcoretool_tasks"]
        assert h["vmap_areas"] == h["kcoretool_areas"]
    else:
        assert h["tasks"] > 10 and h["vmap_areas"] > 100
    assert res["plugin_with_dwarf"] == {"registered": True, "loaded": False, "from_program": {
        "mode": "auto", "kind": "dwarf", "source": None, "reason": "the drgn program's own types"}}
    if res["command"] is not None:
        assert res["command"] == res["cli"]
        assert "kct_make_vmalloc+" in res["cli"]


@pytest.mark.parametrize("dump", DUMPS)
def test_drgn_face_on_dumps(lab, dump: str) -> None:
    core = str(getattr(lab.snapshot, dump))
    cp = subprocess.run([*SCRIPT, core, str(lab.vmlinux)], capture_output=True, text=True, timeout=600,
                        cwd=REPO_ROOT)
    assert cp.returncode == 0, cp.stderr[-3000:]
    _check(json.loads(cp.stdout), live=False)


@pytest.mark.parametrize("dump", ["kdump"])
def test_plain_drgn_on_a_dump_without_vmlinux(lab, dump: str) -> None:
    """``drgn -c DUMP -e`` with kcoretool installed and no debug info."""
    code = ("from drgn.helpers.linux.pid import for_each_task\n"
            "from drgn.helpers.linux.mm import for_each_vmap_area\n"
            "print(sum(1 for _ in for_each_task(prog)), sum(1 for _ in for_each_vmap_area(prog)))\n"
            "f = prog.stack_trace(find_task(prog, 1))[0]\n"
            "print(f.name, hex(f.pc))\n")
    env = {**os.environ, "DRGN_DISABLE_PLUGINS": ""}
    cp = subprocess.run([sys.executable, "-m", "drgn", "-q", "-c", str(getattr(lab.snapshot, dump)), "-e", code],
                        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env)
    assert cp.returncode == 0, cp.stderr[-3000:]
    counts, frame = cp.stdout.splitlines()
    name, pc = frame.split()
    from kcoretool.api import open_kernel

    k = open_kernel(str(getattr(lab.snapshot, dump)), str(lab.vmlinux))
    try:
        assert counts.split() == [str(len(k.tasks(threads=True).tasks)), str(len(k.vmalloc().areas))]
        # pid 1's innermost frame, named from kallsyms as the vmlinux's symbols name it
        assert name == k.prog.symbol(int(pc, 16)).name
    finally:
        k.core.close()


def test_drgn_face_live(lab) -> None:
    rc, out, err = lab.run([*SCRIPT, "/proc/kcore", str(lab.vmlinux)], timeout=900)
    assert rc == 0, err[-3000:]
    _check(json.loads(out), live=True)
    # plain drgn on the running kernel, no vmlinux: drgn's helpers work
    rc, out, err = lab.run([sys.executable, "-m", "drgn", "-q", "-e",
                            "from drgn.helpers.linux.pid import for_each_task\n"
                            "print(sum(1 for _ in for_each_task(prog)) > 10, prog['jiffies'].value_() > 0)"],
                           timeout=600)
    assert rc == 0, err[-3000:]
    assert out.split() == ["True", "True"]
