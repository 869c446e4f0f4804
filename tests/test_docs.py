# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every example of the README and of every docs/*.md page runs, and the
manual builds with warnings as errors (issues 15 and 23).

- ```` ```pycon ```` blocks of a page run as one doctest, from the
  repository's root (so ``fixtures/...`` paths work);
- ```` ```console ```` blocks: each ``$ kcoretool ...`` line runs in a fresh
  process, in a scratch directory where ``fixtures/`` is the repository's,
  and what it prints (stdout and stderr, in order) must be what the page
  shows below it; ``...`` stands for any text, as in a doctest;
- ```` ```text ```` blocks are not run: output that only a lab kernel can
  produce, with a sentence on the page saying where it was captured.

A new page under docs/ is picked up by the glob, here and in the manual's
toctree (docs/index.md)."""

from __future__ import annotations

import doctest
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
CHECKER = doctest.OutputChecker()


def _blocks(page: str, lang: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```lang block of a page."""
    text = (REPO / page).read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text) if m.group(1) == lang]


def _pycon_pages() -> list[str]:
    return [p for p in PAGES if _blocks(p, "pycon")]


def _console_blocks() -> list:
    return [pytest.param(page, line, body, id=f"{page}:{line}")
            for page in PAGES for line, body in _blocks(page, "console")]


@pytest.mark.parametrize("page", _pycon_pages())
def test_page_examples_run(page: str, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    text = "\n".join(body for _, body in _blocks(page, "pycon"))
    assert ">>>" in text, f"{page}: a pycon block without a >>> line"
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, page, page, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert os.getcwd() == str(REPO)


def _commands(body: str) -> list[tuple[str, str]]:
    """(command, expected output) for each ``$`` line of a console block."""
    runs: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], []))
        else:
            assert runs, f"console block starts with output, not a $ line: {line!r}"
            runs[-1][1].append(line)
    return [(cmd, "\n".join(out).strip("\n")) for cmd, out in runs]


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


@pytest.mark.parametrize(("page", "line", "body"), _console_blocks())
def test_console_examples_print_what_the_page_shows(page: str, line: int, body: str, tmp_path) -> None:
    (tmp_path / "fixtures").symlink_to(REPO / "fixtures")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCORETOOL_")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", COLUMNS="80")
    for cmd, want in _commands(body):
        argv = shlex.split(cmd)
        assert argv[0] == "kcoretool", (
            f"{page}:{line}: `$ {cmd}`: console blocks run kcoretool on committed fixtures; "
            "put other output in a ```text block that says where it was captured")
        cp = subprocess.run([sys.executable, "-m", "kcoretool", *argv[1:]], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        got = _normal(cp.stdout)
        assert CHECKER.check_output(_normal(want), got, doctest.ELLIPSIS), (
            f"{page}:{line}: `$ {cmd}` (exit {cp.returncode}) printed:\n{got}\nthe page shows:\n{_normal(want)}")


def test_every_page_has_a_title() -> None:
    """Each docs/*.md page starts with a `# Title` (Sphinx names it by that)."""
    for page in PAGES:
        first = (REPO / page).read_text().lstrip().splitlines()[0]
        assert first.startswith("# "), f"{page}: starts with {first!r}, not a '# Title' line"


def test_every_block_says_what_it_is() -> None:
    """A bare ``` fence is neither run nor marked as captured elsewhere:
    every block names its kind (pycon, console, text, sh, ...)."""
    for page in PAGES:
        inside = False
        for n, line in enumerate((REPO / page).read_text().splitlines(), 1):
            if line.startswith("```"):
                assert inside or line.strip() != "```", (
                    f"{page}:{n}: a bare ``` block; say ```pycon, ```console (run on fixtures) or ```text "
                    "(output captured elsewhere, with a sentence saying where)")
                inside = not inside


def test_readme_links_resolve() -> None:
    """The README is read on the forge, not built by Sphinx: its relative
    links must name files that exist (anchors are Sphinx's to check)."""
    text = (REPO / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (REPO / target).exists(), f"README.md links to {target}, which does not exist"


def test_readme_is_a_front_door() -> None:
    """At most ~250 lines, none over ~200 characters, the two commands on
    its first screen (issue 23)."""
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, len(lines)
    assert max(map(len, lines)) <= 200
    first = "\n".join(lines[:40])
    assert "kcoretool -c fixtures/demo/demo-6.12.kdump vmalloc list" in first
    assert "\nbash tests/run.sh\n" in first
    assert "exec bash tests/run.sh" in (REPO / ".ci" / "run").read_text()


def test_readme_command_table_names_every_command() -> None:
    """Each command `kcoretool --help` lists has a row of the README's
    command table, and each subcommand of a group is named in that group's
    rows (a command added without its row fails here)."""
    import click

    from kcoretool.cli import cli

    rows = [line.split(" | ")[0].strip("| `") + " | " + line for line in
            (REPO / "README.md").read_text().splitlines() if line.startswith("| `")]
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        mine = [r for r in rows if r == name or r.startswith((name + " ", name + "|"))]
        assert mine, f"the README's command table has no row for `{name}`"
        cmd = cli.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(click.Context(cmd)):
                assert any(sub in r for r in mine), f"the README's command table does not name `{name} {sub}`"


def test_manual_builds_without_warnings(tmp_path) -> None:
    """`sphinx-build -W --keep-going` on docs/: a broken link, a page no
    toctree reaches, a heading out of order or a bad block fail the suite."""
    try:
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as e:
        msg = f"the manual needs Sphinx and myst-parser (pip install '.[docs]'; tests/run.sh does): {e}"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    cp = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                         "-d", str(tmp_path / "doctrees"), str(REPO / "docs"), str(tmp_path / "html")],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert cp.returncode == 0, cp.stdout
    assert (tmp_path / "html" / "index.html").is_file()
