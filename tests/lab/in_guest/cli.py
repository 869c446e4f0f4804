"""Runs several kcoretool commands in one process (python -m tests.lab.in_guest.cli
COMMANDS, COMMANDS a JSON list of argv lists) and prints a JSON list of
{"rc", "out", "err"}.  Used *inside* a lab guest, where each fresh process
pays drgn's DWARF indexing again (10-30 s under TCG), so commands that would
each open the same kernel share one open_program().  Importing this module
installs that sharing (tests/lab/in_guest/debuginfo.py relies on it too)."""

import json
import sys
import time

from click.testing import CliRunner

import kcoretool.kernel.program as kernel_pkg
from kcoretool.cli import cli

_orig_open = kernel_pkg.open_program
_programs: dict = {}
#: Seconds the (first) open took, by --debuginfo mode.
open_s: dict = {}


def _memo_open(core_path=None, vmlinux=None, **kw):
    key = (core_path, vmlinux, tuple(sorted(kw.items())))
    if key not in _programs:
        t0 = time.monotonic()
        _programs[key] = _orig_open(core_path, vmlinux, **kw)
        open_s[kw.get("debuginfo", "auto")] = round(time.monotonic() - t0, 3)
    return _programs[key]


kernel_pkg.open_program = _memo_open


def main() -> None:
    results = []
    for argv in json.loads(sys.argv[1]):
        r = CliRunner().invoke(cli, argv, catch_exceptions=True)
        err = r.stderr_bytes.decode(errors="replace") if r.stderr_bytes else ""
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            err += f"\nEXCEPTION {type(r.exception).__name__}: {r.exception}"
        results.append({"rc": r.exit_code, "out": r.stdout_bytes.decode(errors="replace"), "err": err[-2000:]})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
