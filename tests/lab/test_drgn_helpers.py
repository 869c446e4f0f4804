"""drgn's own helpers without a vmlinux, measured against drgn with it
(issue 25): on every dump format, tests/lab/in_guest/drgn_helpers.py runs
once with the vmlinux's DWARF and once with only kcoretool's drgn plugin,
and what drgn returns must be the same -- every task's stack trace (PCs
and functions, from the kernel's own ORC), the typed globals, dmesg,
network namespaces, BPF programs and maps, task states and the ``%crash``
commands ps, log, bpf, sys, mod, kmem -v, vm and foreach bt.  Live, both
programs are read in one process inside the guest and only what a running
kernel keeps still is compared."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any, Dict, List

import pytest

from kcoretool.kernel.globals import GLOBALS
from tests.lab.config import REPO_ROOT

pytestmark = pytest.mark.lab

SCRIPT = [sys.executable, "-m", "tests.lab.in_guest.drgn_helpers"]
ENV = {**os.environ, "DRGN_DISABLE_PLUGINS": ""}


def _run(*args: str) -> Dict[str, Any]:
    cp = subprocess.run([*SCRIPT, *args], capture_output=True, text=True, timeout=900, cwd=REPO_ROOT, env=ENV)
    assert cp.returncode == 0, cp.stderr[-3000:]
    return json.loads(cp.stdout)


def _globals_differ(plugin: Dict[str, Any], dwarf: Dict[str, Any]) -> List[str]:
    bad = []
    for name, want in dwarf.items():
        got = plugin[name]
        if got == want:
            continue
        # an incomplete array in the table ("char []"): the address and the
        # element are what count, the length is the kernel's configuration
        if (GLOBALS[name].endswith("[]") and got is not None and want is not None and got[0] == want[0]
                and got[1][0] == want[1][0] == "array" and got[1][1] is None and got[1][2] == want[1][2]):
            continue
        bad.append(f"{name}: plugin {got} dwarf {want}")
    return bad


def _frames_differ(plugin: Dict[str, Any], dwarf: Dict[str, Any], tasks: Any = None) -> List[str]:
    """Every frame's PC the same; its function named as DWARF names it or,
    where the two differ, as the kernel's own ``%pS`` names the PC (an
    inner label such as entry_SYSCALL_64_after_hwframe in entry_SYSCALL_64:
    kallsyms has no sizes, so the label seems to run to the next symbol). A module frame DWARF leaves unnamed (no
    module debug file) may have the name the module's kallsyms give."""
    bad = []
    for task in (tasks if tasks is not None else dwarf):
        got, want = plugin.get(task) or [], dwarf[task]
        # a module's function DWARF cannot name without the module's debug
        # file, the plugin names from the module's kallsyms
        if [f[0] for f in got] != [f[0] for f in want] or any(
                g[1] not in (w[1], w[2]) and w[1] != hex(w[0]) for g, w in zip(got, want)):
            bad.append(f"task {task}: plugin {got} dwarf {want}")
    return bad


def _renamed(plugin: Dict[str, Any], dwarf: Dict[str, Any]) -> List[Any]:
    """(DWARF's name, the plugin's) of every frame named differently."""
    return sorted({(w[1], g[1]) for t in dwarf for g, w in zip(plugin.get(t) or [], dwarf[t]) if g[1] != w[1]})


_BT_FRAME = re.compile(r"^ *#\d+ (\[[0-9a-f]+\]) \S+ at ([0-9a-f]+)")


def _crash_text(out: str) -> str:
    """A %crash command's output less what only DWARF can say: the
    vmlinux file `sys` names, `bt`'s inline frames (ORC has none) and its
    function names (compared frame by frame in the stacks, by the rule of
    :func:`_frames_differ`)."""
    lines = []
    for line in out.splitlines():
        if line.lstrip().startswith("KERNEL:") or "(inline)" in line:
            continue
        lines.append(_BT_FRAME.sub(r"\1 at \2", line))
    return "\n".join(lines)


@pytest.mark.parametrize("dump", ["elf", "kdump", "elf_filtered"])
def test_drgn_helpers_without_vmlinux_on_dumps(lab, dump: str) -> None:
    core = str(getattr(lab.snapshot, dump))
    dwarf = _run(core, str(lab.vmlinux))
    plugin = _run(core)
    assert not dwarf["plugin_loaded"] and plugin["plugin_loaded"]
    assert _globals_differ(plugin["globals"], dwarf["globals"]) == []
    assert len(dwarf["stacks"]) > 30
    assert _frames_differ(plugin["stacks"], dwarf["stacks"]) == []
    assert plugin["stacks"].keys() == dwarf["stacks"].keys()
    for key in ("task_states", "nets", "bpf_progs", "bpf_maps", "dmesg"):
        assert plugin[key] == dwarf[key], key
    assert dwarf["bpf_progs"] and dwarf["nets"] and "kcoretool_test" in dwarf["dmesg"]
    assert plugin["crash"].keys() == dwarf["crash"].keys()
    for cmd, out in dwarf["crash"].items():
        assert _crash_text(plugin["crash"][cmd]) == _crash_text(out), cmd


def test_drgn_helpers_without_vmlinux_live(lab) -> None:
    rc, out, err = lab.run([*SCRIPT, "--live-both", str(lab.vmlinux)], timeout=900)
    assert rc == 0, err[-3000:]
    res = json.loads(out)
    plugin, dwarf = res["plugin"], res["dwarf"]
    assert _globals_differ(plugin["globals"], dwarf["globals"]) == []
    # a task that did not run between the two reads has the same stack
    still = [t for t, n in dwarf["switches"].items()
             if plugin["switches"].get(t) == n and dwarf["task_states"][t] in "SDI"]
    assert len(still) > 20
    assert _frames_differ(plugin["stacks"], dwarf["stacks"], still) == []
    assert plugin["nets"] == dwarf["nets"]
    assert plugin["bpf_maps"] == dwarf["bpf_maps"]
