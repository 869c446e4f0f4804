# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every ``>>>`` example of docs/api.md and the README runs, on the demo
fixture, and prints what the page says (issue 15)."""

from __future__ import annotations

import doctest
import os
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["docs/api.md", "docs/fleet.md", "README.md"]


def _examples(text: str) -> str:
    """The ``pycon`` blocks of a Markdown page, as one doctest text."""
    return "\n".join(m.group(1) for m in re.finditer(r"```pycon\n(.*?)```", text, re.S))


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page: str, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    text = _examples((REPO / page).read_text())
    assert ">>>" in text, f"{page} has no pycon example"
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, page, page, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert os.getcwd() == str(REPO)
