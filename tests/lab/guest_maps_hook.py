"""Start tests.lab.in_guest.maps.py in the guest (issue 13) and wait for its
regions: one call from lab.start(), before the snapshot is taken."""

from __future__ import annotations

import json
import time
from typing import Optional

from .config import LabError
from .guest import Guest

MAPS_JSON = "/tmp/kct-maps.json"


def start_maps_process(guest: Guest, timeout: float = 120) -> Optional[dict]:
    """Launch the mapping process detached (it outlives the shell) and
    return its JSON: pid and region addresses."""
    script = (f"rm -f {MAPS_JSON}; setsid {guest.python} -m tests.lab.in_guest.maps {MAPS_JSON} "
              "</dev/null >/tmp/kct-maps.log 2>&1 &")
    rc, out, err = guest.sh(script, timeout=60)
    if rc != 0:
        raise LabError(f"could not start tests.lab.in_guest.maps: {(err or out).strip()[-300:]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(guest.read(MAPS_JSON))
        except (LabError, ValueError, KeyError):
            time.sleep(0.5)
    log = ""
    try:
        log = guest.read("/tmp/kct-maps.log")
    except LabError:
        pass
    raise LabError(f"tests.lab.in_guest.maps wrote no {MAPS_JSON} in {timeout:.0f}s: {log.strip()[-300:]}")
