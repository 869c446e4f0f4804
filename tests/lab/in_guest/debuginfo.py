"""Runs kcoretool commands with DWARF and with BTF and reports both outputs
(python -m tests.lab.in_guest.debuginfo CORE VMLINUX COMMANDS, COMMANDS a JSON
list of argv lists or a file holding one).  Used on the
host for vmcores and *inside* a lab guest for /proc/kcore.

Each kernel is opened once per mode (the CLI's open_program is memoized), and
each command runs under DWARF then right after under BTF; on a live kernel a
pair that differs is retried (up to 3 times) in case the kernel changed
between the two runs, and the attempts are reported.  Output is JSON:
{"open_s": {...}, "results": [{"argv", "dwarf", "btf", "attempts"}]}, where
each side is {"rc", "out"} -- stdout, or for commands writing files
(``-o DIR``/``-o FILE``) a listing of the files with their SHA-256."""

import hashlib
import json
import os
import pathlib
import sys
import tempfile
import traceback

from click.testing import CliRunner

from kcoretool.cli import cli
from tests.lab.in_guest.cli import open_s  # also makes each mode's kernel open once


def _files(root: pathlib.Path) -> str:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out.append(f"{p.relative_to(root)} {hashlib.sha256(p.read_bytes()).hexdigest()}")
    return "\n".join(out)


def run(core: str, vmlinux: str, mode: str, argv: list) -> dict:
    base = ["-c", core, "--debuginfo", mode]
    if mode == "dwarf":
        base += ["--vmlinux", vmlinux]
    with tempfile.TemporaryDirectory() as tmp:
        args = [a.replace("{OUT}", tmp + "/out") for a in argv]
        r = CliRunner().invoke(cli, base + args, catch_exceptions=True)
        out = r.stdout_bytes.decode(errors="replace").replace(tmp, "{TMP}")
        err = r.stderr_bytes.decode(errors="replace") if r.stderr_bytes else ""
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            # CliRunner calls the group, not main(): an exception that main()
            # would turn into one line arrives here raw.  Say where it came from.
            out += f"\nEXCEPTION {type(r.exception).__name__}: {r.exception}"
            err += "".join(traceback.format_exception(type(r.exception), r.exception,
                                                      r.exception.__traceback__))
        if os.path.exists(tmp + "/out"):
            p = pathlib.Path(tmp + "/out")
            out += "\nFILES\n" + (_files(p) if p.is_dir() else
                                  f"out {hashlib.sha256(p.read_bytes()).hexdigest()}")
        return {"rc": r.exit_code, "out": out, "err": err[-2000:]}


def main() -> None:
    core, vmlinux, spec = sys.argv[1], sys.argv[2], sys.argv[3]
    cmds = json.loads(spec if spec.startswith("[") else pathlib.Path(spec).read_text())
    live = core == "/proc/kcore"
    results = []
    for argv in cmds:
        for attempt in range(1, 4 if live else 2):  # noqa: B007 -- reported after the loop
            d = run(core, vmlinux, "dwarf", argv)
            b = run(core, vmlinux, "btf", argv)
            if (d["rc"], d["out"]) == (b["rc"], b["out"]):
                break
        results.append({"argv": argv, "dwarf": d, "btf": b, "attempts": attempt})
    json.dump({"open_s": open_s, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
