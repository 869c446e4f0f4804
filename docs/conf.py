# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sphinx configuration of kcoretool's manual: Markdown pages (MyST), built
with warnings as errors by tests/test_docs.py (``sphinx-build -W``)."""

from __future__ import annotations

import pathlib
import re

_init = pathlib.Path(__file__).resolve().parent.parent / "kcoretool" / "__init__.py"

project = "kcoretool"
author = "the kcoretool authors"
copyright = "the kcoretool authors; LGPL-2.1-or-later"
release = version = re.search(r'__version__ = "([^"]+)"', _init.read_text()).group(1)  # type: ignore[union-attr]

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
# `[text](page.md#a-heading)` links, as GitHub renders them.
myst_heading_anchors = 3
# Examples are ```pycon, ```console and ```text; other fences are plain.
highlight_language = "none"
html_theme = "alabaster"
html_title = "kcoretool"
