# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Who runs :func:`~kcoretool.fleet.row.scan_dump`
-----------------------------------------------

Two engines run the same per-dump function and only schedule it; each
hands every finished row to ``on_row`` in the calling process (which
writes it), in the order the dumps finish.

* :func:`run_local` -- a pool of ``jobs`` worker processes on this
  machine, one forked process per dump: a worker that dies (killed, out of
  memory, a signal inside libkdumpfile) takes only its dump with it.  The
  parent imports drgn and kcoretool before forking, so a worker starts
  warm.
* :func:`run_dask` -- a Dask distributed cluster: ``tcp://HOST:PORT``
  (a running scheduler; its workers read the dumps at the same paths: a
  shared filesystem) or ``local:N`` (a cluster of N worker processes
  started here).  Needs the ``fleet`` extra.  A worker that dies is
  restarted by its nanny and the scheduler reruns its dump elsewhere, up
  to the scheduler's ``allowed-failures``; then the dump is ``failed``.

A dump is retried only when its worker died: a dump kcoretool cannot read
is an ``error`` row from the first attempt.
"""

from __future__ import annotations

import collections
import gc
import importlib
import json
import logging
import os
import signal
from typing import Any, Callable, Deque, Dict, List, Sequence, Tuple

from kcoretool._interrupts import deferred_sigint
from kcoretool.errors import KcoreToolError, one_line
from kcoretool.fleet.row import DumpTask, failed_row, freeze_worker_heap, scan_dump

__all__ = ("DASK_MISSING", "run_dask", "run_local")

OnRow = Callable[[Dict[str, Any]], None]

#: the line for a Dask engine or a parquet file without the extra
DASK_MISSING = "needs the fleet extra (Dask distributed, pyarrow): pip install 'kcoretool[fleet]'"

#: what a worker imports for every dump; the pool's parent imports it once
_WARM = ("drgn", "kcoretool.api", "kcoretool.kernel.program", "kcoretool.model.build", "kcoretool.model.exec",
         "kcoretool.model.task", "kcoretool.model.snapshot", "kcoretool.kernel.panic", "kcoretool.source.kdump",
         "kcoretool.source.elfcore", "kcoretool.debuginfo.kallsyms", "kcoretool.debuginfo.btf")


def _death(exitcode: Any) -> str:
    if isinstance(exitcode, int) and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def _child(task: DumpTask, conn: Any) -> None:
    # Ctrl-C is the parent's to handle: it stops the pool and writes no more
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent around fork()
    # the heap inherited from the parent is out of the collector's sight (and
    # its pages are not touched, so not copied); the parent's stays as it was
    gc.freeze()
    conn.send_bytes(json.dumps(scan_dump(task)).encode())
    conn.close()


def _warm() -> None:
    for name in _WARM:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def run_local(tasks: Sequence[DumpTask], on_row: OnRow, jobs: int = 1, retries: int = 2) -> None:
    """Scan ``tasks`` on ``jobs`` worker processes; a dump whose worker
    dies is tried again (at the end of the queue) up to ``retries`` times,
    then written as ``failed``.  An interrupt (Ctrl-C) kills the workers
    and propagates; the rows already handed to ``on_row`` are kept."""
    import multiprocessing
    from multiprocessing.connection import wait

    if jobs < 1:
        raise KcoreToolError(f"jobs={jobs}: give at least one worker")
    _warm()
    ctx = multiprocessing.get_context("fork")
    pending: Deque[Tuple[DumpTask, int]] = collections.deque((t, 1) for t in tasks)
    running: Dict[Any, Tuple[Any, DumpTask, int]] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                task, attempt = pending.popleft()
                r, w = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_child, args=(task, w), name=f"kcoretool-fleet {task.path}", daemon=True)
                # a Ctrl-C during fork() would be raised in an at-fork hook
                # (logging's), which Python prints and ignores
                with deferred_sigint():
                    p.start()
                w.close()
                running[r] = (p, task, attempt)
            for r in wait(list(running)):  # type: ignore[assignment]
                p, task, attempt = running.pop(r)
                try:
                    data = r.recv_bytes()
                except (EOFError, OSError):
                    data = None  # the worker died before it sent its row
                r.close()
                p.join()
                if data is not None:
                    row = json.loads(data)
                    row["attempts"] = attempt
                    on_row(row)
                elif attempt <= retries:
                    pending.append((task, attempt + 1))
                else:
                    on_row(failed_row(task, f"the worker died each of {attempt} times it scanned this dump "
                                            f"(last: {_death(p.exitcode)})", attempt))
    finally:
        for r, (p, _task, _attempt) in running.items():
            p.kill()
            p.join()
            r.close()


def require_dask() -> Any:
    """The ``distributed`` module, or the one line saying how to get it."""
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise KcoreToolError(f"dask= {DASK_MISSING}") from None


def parse_dask_address(address: str) -> Tuple[str, int]:
    """``("local", N)`` or ``(address, 0)``; a bad one raises one line."""
    if address.startswith("local:"):
        n = address[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise KcoreToolError(f"dask={address!r}: give local:N with N worker processes, e.g. local:2")
        return "local", int(n)
    if "://" not in address:
        raise KcoreToolError(f"dask={address!r}: give a scheduler address (tcp://HOST:PORT) or local:N")
    return address, 0


def run_dask(tasks: Sequence[DumpTask], on_row: OnRow, address: str, retries: int = 2) -> None:
    """Scan ``tasks`` on a Dask cluster (``tcp://HOST:PORT`` or
    ``local:N``).  ``retries`` sets ``allowed-failures`` of a local
    cluster's scheduler; a running scheduler keeps its own."""
    where, n = parse_dask_address(address)
    distributed = require_dask()
    import dask

    cluster = None
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
        try:
            if where == "local":
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, silence_logs=logging.ERROR)
                client = distributed.Client(cluster)
            else:
                client = distributed.Client(where, timeout="20s")
        except (OSError, TimeoutError) as e:
            if cluster is not None:
                cluster.close()
            raise KcoreToolError(f"dask={address!r}: cannot reach the scheduler: {one_line(e)}") from None
    futures: List[Any] = []
    try:
        allowed = client.run_on_scheduler(_allowed_failures)
        futures = client.map(_scan_on_worker, list(tasks), pure=False, key=[f"kcoretool-fleet-{i}-{os.getpid()}"
                                                                      for i in range(len(tasks))])
        task_of = {f.key: t for f, t in zip(futures, tasks)}
        for fut in distributed.as_completed(futures):
            task = task_of[fut.key]
            try:
                row = fut.result()
            except distributed.KilledWorker as e:
                row = failed_row(task, f"the worker died each of {allowed + 1} times it scanned this dump "
                                       f"(Dask: {one_line(e)})", allowed + 1)
            except Exception as e:  # the engine's failure is this dump's row, not the end of the batch
                row = failed_row(task, f"the Dask task failed: {one_line(e)}", 1)
            fut.release()
            on_row(row)
    finally:
        if futures:
            try:
                client.cancel(futures)
            except Exception:  # a scheduler already gone
                pass
        client.close()
        if cluster is not None:
            cluster.close()


def _scan_on_worker(task: DumpTask) -> Dict[str, Any]:
    freeze_worker_heap()  # a Dask worker runs dump after dump in one process
    return scan_dump(task)


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)
