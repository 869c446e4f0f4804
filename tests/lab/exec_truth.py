"""The lab's executable-memory truth (issue 12): one call before the snapshot.

:func:`start` launches tests/lab/in_guest/bpf.py in the guest as a detached,
long-lived process (it loads BPF socket filters and holds them) and returns
what it captured right after loading: each program's id, tag, name and
JIT'd bytes, the ``[bpf]`` lines of /proc/kallsyms, /proc/modules and
/sys/module/*/sections/*.  Nothing changes between that capture and the
dump that follows (the programs stay loaded; no module is loaded)."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any, Dict

from .config import LabError, log
from .guest import Guest

TIMEOUT_S = 180.0


def start(guest: Guest, workdir: pathlib.Path) -> Dict[str, Any]:
    out = guest.share / "exec_truth.json"
    out.unlink(missing_ok=True)
    # setsid -f: detached from the agent's process group, stdio not on its pipes.
    rc, so, se = guest.sh(f"setsid -f {guest.python} -m tests.lab.in_guest.bpf {out} >{guest.share}/bpf.log "
                          f"2>&1 </dev/null", timeout=60)
    if rc != 0:
        raise LabError(f"starting tests/lab/in_guest/bpf.py failed ({rc}): {(se or so).strip()[-300:]}")
    deadline = time.monotonic() + TIMEOUT_S
    while not out.exists():
        if time.monotonic() > deadline:
            tail = (guest.share / "bpf.log").read_text(errors="replace")[-300:] \
                if (guest.share / "bpf.log").exists() else ""
            raise LabError(f"in_guest/bpf.py wrote no {out.name} in {TIMEOUT_S:.0f}s: {tail.strip()}")
        time.sleep(0.2)
    truth = json.loads(out.read_text())
    (workdir / "exec_truth.json").write_text(json.dumps(truth))
    if "error" in truth:
        raise LabError(f"in_guest/bpf.py: {truth['error']}")
    log(f"{guest.release}: {len(truth['progs'])} BPF programs loaded (pid {truth['pid']})")
    return truth
