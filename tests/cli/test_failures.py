"""One function turns what ended a command into its line and exit status,
for the console command and for drgn's %kcoretool alike."""

import errno

import click
import pytest

from kcoretool.cli.failures import UNEXPECTED, Interrupted, end_command, failure, one_line
from kcoretool.errors import AccessError, LayoutError


@pytest.mark.parametrize("exc, expected", [
    (AccessError("vmlinux='/x': no such file"), ("--vmlinux /x: no such file", 1)),
    (LayoutError("struct vmap_area has no member va_start", "6.12"),
     ("kcoretool does not know this kernel's layout (6.12): struct vmap_area has no member va_start -- "
      "please report (kcoretool --debug shows where)", 1)),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), (None, 1)),
    (OSError(errno.EPIPE, "Broken pipe"), (None, 1)),
    (OSError(errno.ENOSPC, "No space left on device", "out.bin"),
     ("out.bin: no space left on device; the output is incomplete", 1)),
    (KeyboardInterrupt(), ("interrupted", 130)),
    (Interrupted(), ("interrupted", 130)),
    (click.exceptions.Abort(), ("interrupted", 130)),
    (click.exceptions.Exit(3), (None, 3)),
    (click.UsageError("no such option"), (None, 2)),
    (ZeroDivisionError("division by zero"),
     (f"{UNEXPECTED} ZeroDivisionError: division by zero -- a kcoretool bug or a damaged core; "
      "--debug shows where", 1)),
])
def test_failure(exc, expected):
    assert failure(exc) == expected


def test_one_line_is_one_line():
    assert one_line(AccessError("a\nb  c")) == "a b c"


def test_end_command_prints_the_line(capsys):
    assert end_command(AccessError("debuginfo='btf': no BTF"), debug=False) == 1
    assert capsys.readouterr() == ("", "kcoretool: --debuginfo btf: no BTF\n")
    assert end_command(BrokenPipeError(errno.EPIPE, "Broken pipe"), debug=False) == 1
    assert capsys.readouterr() == ("", "")


def test_end_command_debug_reraises_errors_not_interrupts():
    with pytest.raises(AccessError):
        end_command(AccessError("x"), debug=True)
    assert end_command(KeyboardInterrupt(), debug=True) == 130
    assert end_command(click.UsageError("bad"), debug=True) == 2


def test_drgn_command_and_console_command_say_the_same(capsys):
    """%kcoretool's run_in_program ends a failed command as main() does."""
    import subprocess
    import sys
    from pathlib import Path

    from kcoretool.api import open_kernel
    from kcoretool.cli import run_in_program

    core = str(Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "demo-6.12.kdump")
    args = ["task", "vmas", "99999"]
    k = open_kernel(core)
    try:
        status = run_in_program(k.prog, args)
    finally:
        k.core.close()
    drgn_err = capsys.readouterr().err
    cp = subprocess.run([sys.executable, "-m", "kcoretool", "-c", core, *args], capture_output=True, text=True,
                        timeout=120)
    assert (status, drgn_err) == (cp.returncode, cp.stderr) == (
        1, "kcoretool: no task with pid 99999; `kcoretool task list` shows them\n")
