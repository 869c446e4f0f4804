# SPDX-License-Identifier: LGPL-2.1-or-later
"""
One dump, one row
-----------------

:func:`scan_dump` is the per-dump function every engine runs -- in a
forked worker of the local pool or on a Dask worker -- and the only place
a dump is opened.  It never raises for a bad dump: what cannot be read
becomes a row with ``status: "error"`` and the one line the CLI would
print.  A row is a plain JSON object (``SCHEMA`` names its version); the
keys a re-run matches on are ``path``, ``size`` and ``mtime_ns``
(:func:`row_key`).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import resource
import socket
import time
from typing import Any, Dict, List, Optional, Tuple

from kcoretool.errors import one_line

__all__ = ("SCHEMA", "DumpTask", "dump_task", "failed_row", "row_key", "scan_dump", "vmlinux_in")

#: ``schema`` of every row: a re-run refuses a file whose rows lack it.
SCHEMA = "kcoretool-fleet/1"

#: what a row is matched on when a scan is resumed
Key = Tuple[str, int, int]


@dataclasses.dataclass(frozen=True)
class DumpTask:
    """A dump to scan, as found when the scan started."""

    path: str
    size: int
    mtime_ns: int
    #: a directory holding a vmlinux per release (:func:`vmlinux_in`); None: BTF and kallsyms
    debuginfo_dir: Optional[str] = None

    @property
    def key(self) -> Key:
        return (self.path, self.size, self.mtime_ns)


def dump_task(path: str, debuginfo_dir: Optional[str] = None) -> DumpTask:
    """The task for ``path`` (made absolute, not resolved: two names of one
    file are two dumps), stat'ed now.  :raises OSError: it cannot be stat'ed."""
    path = os.path.abspath(path)
    st = os.stat(path)
    return DumpTask(path, st.st_size, st.st_mtime_ns, debuginfo_dir)


def row_key(row: Dict[str, Any]) -> Key:
    return (row["path"], row["size"], row["mtime_ns"])


def vmlinux_in(directory: str, release: str) -> Optional[str]:
    """A vmlinux for ``release`` under ``directory``: ``vmlinux-RELEASE``,
    ``RELEASE/vmlinux``, or a debug package unpacked there
    (``usr/lib/debug/boot/vmlinux-RELEASE``,
    ``usr/lib/debug/lib/modules/RELEASE/vmlinux``)."""
    if not release or "/" in release or release.startswith("."):
        return None
    for rel in (f"vmlinux-{release}", f"{release}/vmlinux", f"usr/lib/debug/boot/vmlinux-{release}",
                f"usr/lib/debug/lib/modules/{release}/vmlinux"):
        p = os.path.join(directory, rel)
        if os.path.isfile(p):
            return p
    return None


def _base(task: DumpTask) -> Dict[str, Any]:
    return {"schema": SCHEMA, "path": task.path, "size": task.size, "mtime_ns": task.mtime_ns}


def failed_row(task: DumpTask, error: str, attempts: int) -> Dict[str, Any]:
    """The row of a dump whose worker died ``attempts`` times."""
    return {**_base(task), "status": "failed", "error": error, "attempts": attempts}


def _worker() -> Dict[str, Any]:
    # ru_maxrss: the worker process's peak so far, in KiB (Linux)
    return {"worker": f"{socket.gethostname()}:{os.getpid()}",
            "worker_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def scan_dump(task: DumpTask) -> Dict[str, Any]:
    """Open the dump and fingerprint it; a dump that cannot be read is a
    row with its one-line ``error``, never an exception."""
    t0 = time.monotonic()
    row = _base(task)
    try:
        _scan(task, row)
        row["status"] = "ok"
    except Exception as e:  # every failure of one dump is that dump's row
        # of a half-scanned dump only what the file itself says
        row = {k: v for k, v in row.items() if k in _ERROR_KEYS}
        row["status"] = "error"
        row["error"] = one_line(e)
        if row.get("incomplete"):
            # what failed may be in the part the file lacks: say so, not only "damaged"
            row["error"] += f" (the dump is incomplete: {row['incomplete']})"
    # The dump's drgn Programs sit in reference cycles (kcoretool's caches
    # in prog.cache, the plugin's): a long-lived (Dask) worker would keep
    # each one -- ~55 MiB for the demo -- until the cyclic collector ran.
    gc.collect()
    row["elapsed_s"] = round(time.monotonic() - t0, 3)
    row["attempts"] = 1
    row.update(_worker())
    return row


#: what an error row keeps: the dump as found and what its headers say
_ERROR_KEYS = ("schema", "path", "size", "mtime_ns", "format", "incomplete", "release")

_frozen = False


def freeze_worker_heap() -> None:
    """In a worker process, before its first dump: move what it holds
    (imports, a Dask worker's state) out of the collector's sight, so the
    gc.collect() after each dump walks only that dump's objects (a third of
    its cost here).  Never in the caller's process: frozen objects are never
    collected."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def _scan(task: DumpTask, out: Dict[str, Any]) -> None:
    """Fill ``out`` field by field: what was found before a failure stays."""
    from kcoretool.api import open_core, open_kernel

    core = open_core(task.path)
    try:
        out["format"] = core.kind
        # a cut kdump file: what it lacks (its pages past the end read as truncated)
        out["incomplete"] = getattr(core, "incomplete", None)
        out["release"] = core.release  # VMCOREINFO's or the kdump header's: a damaged dump's release too
        vmlinux = None
        if task.debuginfo_dir is not None and core.release:
            vmlinux = vmlinux_in(task.debuginfo_dir, core.release)
        k = open_kernel(task.path, vmlinux, debuginfo="dwarf" if vmlinux else "btf", core=core)
        plan = k.debuginfo
        out["debuginfo"] = plan.kind if plan is not None else None
        out["vmlinux"] = vmlinux
        snap = k.snapshot()  # release, boot id, time; builds the vmalloc and exec models
        out["release"] = snap.release
        out["boot_id"] = snap.boot_id
        out["crash_time"] = core.crash_time
        out["time"] = snap.time
        out["time_source"] = snap.time_source
        out["panicking"], out["panic_reason"] = k.panic_state()
        out["vmalloc"] = _vmalloc(k)
        out["exec"] = _exec(k)
        out["exec_audit"] = _audit(k)
        out["tasks"] = _tasks(k)
    finally:
        core.close()


def _vmalloc(k: Any) -> Dict[str, Any]:
    m = k.vmalloc()
    s = m.stats()
    callers = sorted(((name, t) for name, t in s["by_caller"].items() if t["pages"]),
                     key=lambda nt: (-nt[1]["pages"], nt[0]))
    ps = m.page_size
    bits = sum(b.bits for b in m.blocks)
    free = sum(b.free for b in m.blocks)
    dirty = sum(b.dirty for b in m.blocks)
    handed_out = bits - free
    return {
        "areas": s["areas"],
        "by_kind": {kind: [t["count"], t["pages"], t["size"]] for kind, t in s["by_kind"].items()},
        # every caller with pages, most pages first: [areas, pages, bytes]
        "callers": {name: [t["count"], t["pages"], t["size"]] for name, t in callers},
        "lazy_pages": s["lazy"]["pages"],
        "vmap_lazy_nr": s["lazy"]["vmap_lazy_nr"],
        "lazy_max_pages": s["lazy"]["lazy_max_pages"],
        "free_bytes": s["vmalloc_range"]["free"],
        "holes": s["vmalloc_range"]["holes"],
        "largest_hole": s["vmalloc_range"]["largest_hole"],
        "blocks": len(m.blocks),
        "block_pages": bits,
        "block_free_pages": free,
        "block_dirty_pages": dirty,
        # of the pages vmap blocks handed out, the share freed but not
        # reusable until a purge (dirty): what vm_map_ram fragmentation costs
        "block_fragmentation": round(dirty / handed_out, 4) if handed_out else 0.0,
        "page_size": ps,
        "warnings": len(m.warnings),
    }


def _exec(k: Any) -> Dict[str, List[int]]:
    ps = k.vmalloc().page_size
    out: Dict[str, List[int]] = {}
    for r in k.exec_memory().regions:
        if r.kind == "free":
            continue
        t = out.setdefault(r.kind, [0, 0, 0])
        t[0] += 1
        t[1] += (r.size + ps - 1) // ps
        t[2] += r.size
    # [regions, pages, bytes] by kind, most pages first
    return dict(sorted(out.items(), key=lambda kv: (-kv[1][1], kv[0])))


def _audit(k: Any) -> Dict[str, Any]:
    """``exec audit``'s verdict: flags by reason and the unowned bytes.  A
    dump whose page tables cannot be audited (filtered out, damaged) keeps
    its row: the audit's own one-line error goes in ``error``."""
    try:
        a = k.exec_audit()
    except Exception as e:
        return {"flags": None, "error": one_line(e)}
    reasons: Dict[str, int] = {}
    for f in a.flags:
        reasons[f.reason] = reasons.get(f.reason, 0) + 1
    return {"flags": len(a.flags), "reasons": dict(sorted(reasons.items())),
            "executable_bytes": a.executable_bytes, "unowned_bytes": a.unowned_bytes}


def _tasks(k: Any) -> Dict[str, Any]:
    tasks = k.tasks().tasks
    top = max((t for t in tasks if t.mm is not None), key=lambda t: t.mm.rss_pages, default=None)
    return {
        "count": len(tasks),
        "max_rss_pages": top.mm.rss_pages if top is not None else None,
        "max_rss_pid": top.pid if top is not None else None,
        "max_rss_comm": top.comm if top is not None else None,
    }
