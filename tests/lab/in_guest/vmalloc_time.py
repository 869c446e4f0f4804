"""Runs *inside* a lab guest (python -m tests.lab.in_guest.vmalloc_time VMLINUX N OUT):

1. starts ``kcoretool --debuginfo btf vmalloc top -n 2 -d 3`` (plain text:
   stdout is a pipe; BTF because loading DWARF under TCG costs a minute and
   the live DWARF views are checked elsewhere)
   and, as soon as its first refresh is out, writes ``grow N`` to the test
   module's control file, so the second refresh must show N more areas
   from kct_grow;
2. then, in this process, ``kcoretool --debuginfo btf vmalloc snapshot -o
   OUT`` of the live kernel (the host dumps the guest right after this
   returns, to compare the two).

Prints one JSON object; the host-side test (tests/lab/test_vmalloc_time.py)
judges it.  Two kernel opens in all (top's and the snapshot's)."""

import json
import subprocess
import sys
import time

CONTROL = "/sys/kernel/debug/kcoretool_test/control"
AREAS = "/sys/kernel/debug/kcoretool_test/areas.json"


def main() -> None:
    n, out_path = int(sys.argv[2]), sys.argv[3]
    res: dict = {}
    top = subprocess.Popen(
        [sys.executable, "-m", "kcoretool", "--debuginfo", "btf", "vmalloc", "top", "-n", "2", "-d", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert top.stdout is not None
    lines = []
    grew = False
    deadline = time.monotonic() + 300
    for line in top.stdout:  # the refresh is one write: its header means all of it is here
        lines.append(line)
        if not grew and line.startswith("kcoretool vmalloc top") and " refresh 1" in line:
            with open(CONTROL, "w") as f:
                f.write(f"grow {n}")
            grew = True
            res["grow_at"] = time.time()
        if time.monotonic() > deadline:
            top.kill()
            break
    rest, err = top.communicate(timeout=60)
    res.update(top_rc=top.returncode, top_out="".join(lines) + rest, top_err=err[-2000:], grew=grew)
    with open(AREAS) as f:
        res["module"] = json.load(f)

    from click.testing import CliRunner

    from kcoretool.cli import cli

    t0 = time.monotonic()
    r = CliRunner().invoke(cli, ["--debuginfo", "btf", "vmalloc", "snapshot", "-o", out_path])
    res.update(snapshot_rc=r.exit_code, snapshot_out=r.stdout_bytes.decode(errors="replace"),
               snapshot_err=(r.stderr_bytes or b"").decode(errors="replace")[-2000:]
               + (f"\nEXCEPTION {r.exception!r}" if r.exception and not isinstance(r.exception, SystemExit)
                  else ""),
               snapshot_s=round(time.monotonic() - t0, 2))
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
