"""
A seeded campaign of hostile fleet files (issue 26).

    python benchmarks/fleet_campaign.py [--cases 400] [--seed 26] [--timeout 60]

A real fleet file is made once (``fleet scan`` of three damaged fixtures:
error rows, fast), then each case mutates a copy -- cut at any byte, bytes
flipped or inserted, a line that is not JSON, not an object, another
schema, wrong types (strings, floats, bools, negatives, 2^64 where sizes
belong), NUL-filled or CRLF tails, a BOM, non-UTF-8, nesting past any
parser's depth, a line over 16 MiB, duplicate rows, empty lines, a lone
torn line -- or replaces it with what is not a file (a FIFO, /dev/null, a
directory, a dangling link) and runs ``fleet scan`` (resuming into it)
and ``fleet report`` on it.

The parent imports kcoretool once and forks one child per command; the
child runs ``kcoretool.cli.main`` in-process with stdout and stderr in
files; the parent waits with a timeout and checks: no traceback, no death
by a signal, no hang, exit 0 or 1; an exit 1 is one line ``kcoretool:
...`` and leaves the file byte for byte as it was; an exit 0 of a scan
keeps every whole line the file had (only a torn tail may go), ends in a
newline, holds only rows, and has each scanned dump exactly once more
than before at most -- never a dump the file already had. Exit status 1
if any check failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import random
import signal
import stat
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
INPUTS = [str(ROOT / "fixtures" / "hostile" / n) for n in ("elf32.core", "phnum-0.core", "header-truncated.core")]
HOSTILE = [None, True, False, -1, 0, 1.5, float("nan"), "12", "", [], {}, 1 << 64, -(1 << 63), "\ud800", "\x00"]


def child(argv: List[str], out: str, err: str) -> None:
    os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
    from kcoretool.cli import main

    try:
        main(argv)
    except SystemExit as e:
        os._exit(e.code if isinstance(e.code, int) else 1)
    os._exit(0)


def run(argv: List[str], work: str, timeout: float) -> Tuple[Optional[int], str, str]:
    out, err = os.path.join(work, "out"), os.path.join(work, "err")
    pid = os.fork()
    if pid == 0:
        try:
            child(argv, out, err)
        finally:
            os._exit(99)
    t0 = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, "", "timeout"
        time.sleep(0.005)
    code = os.waitstatus_to_exitcode(status)
    return code, pathlib.Path(out).read_text(errors="replace"), pathlib.Path(err).read_text(errors="replace")


def mutations(rnd: random.Random, good: bytes) -> List[Tuple[str, Callable[[], bytes]]]:
    lines = good.splitlines(keepends=True)
    row = json.loads(lines[0])

    def field() -> bytes:
        r = dict(row)
        r[rnd.choice(["schema", "path", "size", "mtime_ns", "status"])] = rnd.choice(HOSTILE)
        try:
            text = json.dumps(r)
        except ValueError:
            text = json.dumps(r, allow_nan=True)
        return b"".join(lines[:1]) + text.encode("utf-8", "surrogatepass") + b"\n" + b"".join(lines[1:])

    def cut() -> bytes:
        return good[:rnd.randrange(len(good) + 1)]

    def flip() -> bytes:
        b = bytearray(good)
        for _ in range(rnd.randrange(1, 8)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        return bytes(b)

    def insert() -> bytes:
        at = rnd.randrange(len(good) + 1)
        return good[:at] + rnd.randbytes(rnd.randrange(1, 64)) + good[at:]

    return [
        ("cut", cut), ("flip", flip), ("insert", insert), ("field", field),
        ("not-json", lambda: good + b"hello\n"),
        ("array", lambda: good + b"[1, 2]\n"),
        ("other-schema", lambda: good + json.dumps({**row, "schema": "kcoretool-fleet/2"}).encode() + b"\n"),
        ("nul-tail", lambda: good + bytes(rnd.randrange(1, 9000))),
        ("crlf", lambda: good.replace(b"\n", b"\r\n")),
        ("bom", lambda: b"\xef\xbb\xbf" + good),
        ("latin1", lambda: good + b'{"path": "\xe9"}\n'),
        ("deep", lambda: good + b"[" * 100000 + b"\n"),
        ("huge-line", lambda: good + b'{"x": "' + b"a" * (17 << 20) + b'"}\n'),
        ("huge-tail", lambda: good + b'{"x": "' + b"a" * (17 << 20)),
        ("duplicate", lambda: good + lines[0]),
        ("empty-lines", lambda: b"\n\n" + good + b"\n   \n"),
        ("torn-only", lambda: lines[0][: rnd.randrange(1, len(lines[0]) - 1)]),
        ("whole-no-newline", lambda: good[:-1]),
        ("empty", lambda: b""),
    ]


def check(kind: str, argv: List[str], code: Optional[int], out: str, err: str, before: Optional[bytes],
          after: Optional[bytes], scanned: List[str]) -> List[str]:
    bad = []
    if code is None:
        return ["timeouts"]
    if code < 0:
        return ["signal deaths"]
    if "Traceback" in err or "Traceback" in out:
        bad.append("tracebacks")
    if code not in (0, 1):
        bad.append("wrong exit")
    if code == 1:
        lines = err.splitlines()
        if len(lines) != 1 or not lines[0].startswith("kcoretool: "):
            bad.append("not one line")
        if before != after:
            bad.append("file changed")
    if code == 0 and argv[1] == "scan" and before is not None and after is not None:
        whole = before[: before.rfind(b"\n") + 1] if b"\n" in before else b""
        if not after.startswith(whole) or not after.endswith(b"\n"):
            bad.append("lines lost")
        else:
            keys: collections.Counter = collections.Counter()
            try:
                for line in after.splitlines():
                    if line.strip():
                        r = json.loads(line)
                        keys[(r["path"], r["size"], r["mtime_ns"])] += 1
            except (ValueError, KeyError, TypeError):
                bad.append("not rows")
            else:
                if any(p not in {k[0] for k in keys} for p in scanned):
                    bad.append("dump missing")
                if kind != "duplicate" and any(n > 1 for k, n in keys.items() if k[0] in scanned):
                    bad.append("row twice")
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=400)
    ap.add_argument("--seed", type=int, default=26)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    import kcoretool.cli
    import kcoretool.cli.fleet  # noqa: F401
    import kcoretool.fleet.engines as engines

    engines._warm()
    rnd = random.Random(a.seed)
    t0 = time.monotonic()
    failures: Dict[str, List[str]] = collections.defaultdict(list)
    kinds: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="kcoretool-fleet-campaign-") as work:
        seed_file = os.path.join(work, "seed.jsonl")
        code, _out, err = run(["fleet", "scan", *INPUTS, "-o", seed_file, "-q"], work, a.timeout)
        assert code == 0, err
        good = pathlib.Path(seed_file).read_bytes()
        muts = mutations(rnd, good)
        specials = ["fifo", "devnull", "dir", "dangling"]
        for i in range(a.cases):
            target = os.path.join(work, f"case-{i}.jsonl")
            if i % 25 == 24:
                kind = specials[(i // 25) % len(specials)]
                if kind == "fifo":
                    os.mkfifo(target)
                elif kind == "devnull":
                    os.symlink("/dev/null", target)
                elif kind == "dir":
                    os.mkdir(target)
                else:
                    os.symlink(os.path.join(work, "nowhere", "x"), target)
            else:
                kind, make = rnd.choice(muts)
                pathlib.Path(target).write_bytes(make())
            kinds[kind] += 1
            scanned = INPUTS[: rnd.randrange(1, len(INPUTS) + 1)]
            for argv in (["fleet", "report", target, "--json"], ["fleet", "scan", *scanned, "-o", target, "-q"]):
                regular = stat.S_ISREG(os.lstat(target).st_mode)
                before = pathlib.Path(target).read_bytes() if regular else None
                code, out, err = run(argv, work, a.timeout)
                after = pathlib.Path(target).read_bytes() if regular else None
                for what in check(kind, argv, code, out, err, before, after, scanned):
                    failures[what].append(f"case {i} ({kind}) {argv[1]}: exit {code}: {err.strip()[:300]}")
            if os.path.isdir(target) and not os.path.islink(target):
                os.rmdir(target)
            else:
                os.unlink(target)
    dt = time.monotonic() - t0
    print(f"fleet file campaign: seed {a.seed}, {a.cases} cases in {dt:.0f} s")
    for key in ("tracebacks", "signal deaths", "timeouts", "wrong exit", "not one line", "file changed",
                "lines lost", "not rows", "dump missing", "row twice"):
        print(f"{key:<16} {len(failures.get(key, []))}")
    print("cases by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    for key, items in failures.items():
        for x in items[:5]:
            print(f"  {key}: {x}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
