# SPDX-License-Identifier: LGPL-2.1-or-later
"""The harness the seeded campaigns share (hostile_campaign.py,
snapshot_campaign.py): every case runs the CLI in a forked child -- its own
process group, stdout and stderr in files, optional address-space limit and
Ctrl-C -- up to ``jobs`` at once; the parent reaps through pidfds, so a
signal death, a hang (the group is killed at the timeout) or a traceback is
seen and counted, never taken for a result.

Forking (not exec) is what makes 10,000 cases affordable: the parent imports
kcoretool, drgn and click once and warms them (``quietly``)."""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import resource
import select
import signal
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, NoReturn, Optional, Tuple

STDOUT, STDERR = "stdout", "stderr"


@dataclasses.dataclass
class Start:
    """What a case runs: the CLI's argv in slot directory ``work``."""

    argv: List[str]
    payload: Any = None            # handed back with the outcome
    as_limit: Optional[int] = None  # RLIMIT_AS of the child, bytes
    sigint_after: float = 0.0       # seconds until the child gets SIGINT (0: never)


@dataclasses.dataclass
class Outcome:
    how: str      # "exit", "signal" (code = the signal) or "timeout" (code = -1)
    code: int
    err: str      # the child's stderr ("" after a timeout)
    seconds: float


def _child(start: Start, work: str) -> NoReturn:
    fd_out = os.open(os.path.join(work, STDOUT), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fd_err = os.open(os.path.join(work, STDERR), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd_out, 1)
    os.dup2(fd_err, 2)
    # The forking process may have replaced sys.stdout/err (pytest does).
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if start.as_limit:
        resource.setrlimit(resource.RLIMIT_AS, (start.as_limit, start.as_limit))
    if start.sigint_after:
        # Ctrl-C from the terminal, once the CLI has put in its handler
        signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGINT))
        signal.setitimer(signal.ITIMER_REAL, start.sigint_after)
    status = 0
    try:
        from kcoretool.cli import main

        main(start.argv, prog_name="kcoretool")
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(status)


def run(slots: List[str], cases: Iterable[int], make: Callable[[int, int], Optional[Start]],
        done: Callable[[int, int, Start, Outcome], None], timeout: float) -> None:
    """Run case ``i`` for each i of ``cases``: ``make(i, j)`` prepares slot
    directory ``slots[j]`` and returns what to run (None: skip the case);
    ``done(i, j, start, outcome)`` judges it before slot j is reused."""
    pending = iter(cases)
    running: Dict[int, Tuple[int, float, int, int, Start]] = {}
    free = list(range(len(slots)))
    exhausted = False
    while True:
        while free and not exhausted:
            i = next(pending, None)
            if i is None:
                exhausted = True
                break
            j = free.pop()
            start = make(i, j)
            if start is None:
                free.append(j)
                continue
            t0 = time.monotonic()
            pid = os.fork()
            if pid == 0:
                try:
                    os.setpgid(0, 0)
                finally:
                    _child(start, slots[j])
            running[os.pidfd_open(pid)] = (pid, t0, i, j, start)
        if not running:
            return
        now = time.monotonic()
        wait = max(0.0, min(r[1] + timeout for r in running.values()) - now)
        ready, _, _ = select.select(list(running), [], [], wait)
        now = time.monotonic()
        late = [fd for fd, r in running.items() if now - r[1] >= timeout and fd not in ready]
        for fd in list(ready) + late:
            pid, t0, i, j, start = running.pop(fd)
            killed = fd not in ready
            if killed:
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            os.close(fd)
            took = time.monotonic() - t0
            if killed:
                outcome = Outcome("timeout", -1, "", took)
            else:
                try:
                    err = pathlib.Path(slots[j], STDERR).read_text(errors="replace")
                except OSError:
                    err = ""
                if os.WIFSIGNALED(status):
                    outcome = Outcome("signal", os.WTERMSIG(status), err, took)
                else:
                    outcome = Outcome("exit", os.WEXITSTATUS(status), err, took)
            done(i, j, start, outcome)
            free.append(j)


class Tally:
    """Counts by key and a few examples of each problem, printed at the end."""

    def __init__(self, problems: Tuple[str, ...], show: int) -> None:
        self.problems = problems
        self.show = show
        self.counts: Dict[str, int] = collections.Counter()
        self.examples: Dict[str, List[str]] = collections.defaultdict(list)
        self.slowest = 0.0

    def case(self, outcome: Outcome, *kinds: str) -> None:
        self.counts["cases"] += 1
        for k in kinds:
            self.counts[k] += 1
        if outcome.how == "exit":
            self.counts[f"exit {outcome.code}"] += 1
        self.slowest = max(self.slowest, outcome.seconds)

    def flag(self, key: str, text: str) -> None:
        assert key in self.problems, key
        self.counts[key] += 1
        if len(self.examples[key]) < self.show:
            self.examples[key].append(text)

    def report(self) -> int:
        """Print the statuses, each problem's count, the examples; 1 if any."""
        print("exit statuses: " + ", ".join(f"{k[5:]}: {v}" for k, v in sorted(self.counts.items())
                                              if k.startswith("exit ")))
        width = max(map(len, self.problems)) + 2
        for k in self.problems:
            print(f"{k:<{width}}{self.counts.get(k, 0)}")
        for k in self.problems:
            for text in self.examples.get(k, []):
                print(f"\n[{k}] {text}")
        return 1 if any(self.counts.get(k, 0) for k in self.problems) else 0


def quietly(runs: List[List[str]], check: bool = False) -> None:
    """Run CLI commands in this process with stdout/stderr on /dev/null: the
    imports and first-call costs are paid once, not in every child."""
    from kcoretool.cli import main

    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        for argv in runs:
            try:
                main(argv)
            except SystemExit as e:
                if check:
                    assert not e.code, (argv, e.code)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)
