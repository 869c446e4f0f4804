"""Runs issue 13's task-memory commands in ONE process (python -m
tests.lab.in_guest.task CORE VMLINUX SPEC_JSON), on the host for a vmcore or
inside the guest for /proc/kcore, and prints JSON.

For each --debuginfo mode in the spec: ``task list --json``; for every pid,
``task vmas PID --format maps`` (live: /proc/PID/maps read right before and
right after, so a caller can tell a stable process from one that changed);
``read --pid --json`` of each region (live: then the same bytes from
/proc/PID/mem).  Commands go through the CLI (click's runner) with the kernel
opened once per mode (tests.lab.in_guest.cli's memoization)."""

from __future__ import annotations

import json
import os
import sys

from click.testing import CliRunner

import tests.lab.in_guest.cli  # noqa: F401 -- one open_program() per mode
from kcoretool.cli import cli


def _maps(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _mem(pid: int, addr: int, size: int) -> list:
    """/proc/PID/mem page by page (hex, or None where it cannot be read:
    a pread stops at the first unmapped page, e.g. a munmap hole)."""
    out: list = []
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return [None] * (size // 4096)
    try:
        for off in range(0, size, 4096):
            try:
                out.append(os.pread(fd, 4096, addr + off).hex() or None)
            except OSError:
                out.append(None)
    finally:
        os.close(fd)
    return out


def _cli(base: list, argv: list) -> dict:
    r = CliRunner().invoke(cli, base + argv, catch_exceptions=True)
    err = r.stderr_bytes.decode(errors="replace") if r.stderr_bytes else ""
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        err += f"\nEXCEPTION {type(r.exception).__name__}: {r.exception}"
    return {"rc": r.exit_code, "out": r.stdout_bytes.decode(errors="replace"), "err": err[-3000:]}


def main() -> None:
    core, vmlinux, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    live = core == "/proc/kcore"
    out: dict = {"self": os.getpid(), "modes": {}}
    for mode in spec["modes"]:
        base = ["-c", core, "--debuginfo", mode] + (["--vmlinux", vmlinux] if mode == "dwarf" else [])
        res: dict = {"task_list": _cli(base, ["--json", "task", "list"]), "maps": {}, "reads": {}}
        pids = spec.get("pids") or sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        for pid in pids:
            before = _maps(pid) if live else None
            r = _cli(base, ["task", "vmas", str(pid), "--format", "maps"])
            after = _maps(pid) if live else None
            res["maps"][str(pid)] = dict(r, before=before, after=after)
        for name, pid, addr, size in spec.get("reads", []):
            r = _cli(base, ["--json", "read", "--pid", str(pid), hex(addr), hex(size)])
            if live and spec.get("mem") and name in spec["mem"]:
                r["mem"] = _mem(pid, addr, size)
            res["reads"][name] = r
        for argv in spec.get("extra", []):
            res.setdefault("extra", []).append(dict(_cli(base, argv), argv=argv))
        out["modes"][mode] = res
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
