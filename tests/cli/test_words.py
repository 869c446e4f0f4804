"""The library speaks API words; the CLI rewords them with its flags and commands."""

import ast
import re
from pathlib import Path

import pytest

from kcoretool.cli.words import FLAGS, cli_words

PACKAGE = Path(__file__).resolve().parents[2] / "kcoretool"


@pytest.mark.parametrize("api, cli", [
    ("vmlinux='/x': no such file", "--vmlinux /x: no such file"),
    ("no kallsyms; pass vmlinux=", "no kallsyms; pass --vmlinux"),
    ("vmlinux= with DWARF does without them", "--vmlinux with DWARF does without them"),
    ("debuginfo='btf': this kernel has no BTF", "--debuginfo btf: this kernel has no BTF"),
    ("via='kcore' reads through /proc/kcore", "--via kcore reads through /proc/kcore"),
    ("a vmcore instead with core_path=PATH", "a vmcore instead with -c PATH"),
    ("(force_io=True reads it)", "(--force-io reads it)"),
    ("fix that line or give another output=", "fix that line or give another -o"),
    ("give a file scan_fleet() wrote", "give a file `kcoretool fleet scan` wrote"),
    ("no task with pid 7; Kernel.tasks() shows them", "no task with pid 7; `kcoretool task list` shows them"),
    ("please report (the traceback shows where)", "please report (kcoretool --debug shows where)"),
    # a parameter name inside a word or a path is not a parameter
    ("/srv/myvmlinux=1/vmlinux: not an ELF file", "/srv/myvmlinux=1/vmlinux: not an ELF file"),
])
def test_cli_words(api, cli):
    assert cli_words(api) == cli


def _strings(path: Path):
    tree = ast.parse(path.read_text())
    docs = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and n.body:
            first = n.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            yield n.lineno, n.value


def test_library_messages_have_no_cli_words():
    """Outside kcoretool/cli/ no string (docstrings aside) names a CLI flag or
    a kcoretool command: a drgn script has no command line."""
    # -X: a short flag; -U, -s, -R: other tools' (pip, drgn, makedumpfile) in their own command lines
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+|(?<![\w-])-[a-zA-Z](?=[ ,;:)]|$)(?<!-U)(?<!-s)(?<!-R)"
                      r"|`kcoretool |kcoretool --")
    found = [f"{p.relative_to(PACKAGE.parent)}:{line}: {s!r}"
             for p in sorted(PACKAGE.rglob("*.py")) if "cli" not in p.relative_to(PACKAGE).parts[:1]
             and p.name != "drgn_plugin.py"  # the %kcoretool command's own help
             for line, s in _strings(p) if flag.search(s)]
    assert found == []


def test_every_flag_is_an_option_of_the_cli():
    from click.testing import CliRunner

    from kcoretool.cli import cli

    helps = "".join(CliRunner().invoke(cli, [*cmd, "--help"]).output for cmd in ([], ["read"], ["fleet", "scan"]))
    for flag in FLAGS.values():
        assert re.search(rf"(?<![\w-]){re.escape(flag)}\b", helps), flag


def test_api_message_in_api_words_cli_message_with_the_flag(tmp_path):
    """The same mistake: the API's message names the parameter, the CLI's the flag."""
    import subprocess
    import sys

    from kcoretool.api import open_kernel
    from kcoretool.errors import AccessError

    core = str(PACKAGE.parent / "fixtures" / "vmcore-6.1.core")
    missing = str(tmp_path / "vmlinux")
    with pytest.raises(AccessError) as e:
        open_kernel(core, vmlinux=missing)
    assert str(e.value) == f"vmlinux={missing!r}: no such file; give the kernel's vmlinux with debug info"
    cp = subprocess.run([sys.executable, "-m", "kcoretool", "-c", core, "--vmlinux", missing, "vmalloc", "stats"],
                        capture_output=True, text=True, timeout=120)
    assert (cp.returncode, cp.stderr) == (
        1, f"kcoretool: --vmlinux {missing}: no such file; give the kernel's vmlinux with debug info\n")
