"""
The CLI's words for the library's
---------------------------------

The library speaks in API terms: its messages name parameters as
``name=`` (``vmlinux=``, ``via='kcore'``, ``force_io=True``) and calls
as ``Kernel.tasks()``.  The CLI says the same with its own flags and
commands: :func:`cli_words` rewrites a library message through the one
table of each, wherever the CLI prints one (an error, a page state, the
debug-info plan).
"""

from __future__ import annotations

import re
from typing import Dict

__all__ = ("COMMANDS", "FLAGS", "cli_words")

#: API parameter -> the global or command option that sets it
FLAGS: Dict[str, str] = {
    "core_path": "-c",
    "vmlinux": "--vmlinux",
    "debuginfo": "--debuginfo",
    "via": "--via",
    "force_io": "--force-io",
    "sparse": "--sparse",
    "dask": "--dask",
    "output": "-o",
}

#: API call (or an API user's remedy) -> the command (or flag) that does it
COMMANDS: Dict[str, str] = {
    "Kernel.tasks()": "`kcoretool task list`",
    "Kernel.checker()": "vmalloc check",
    "Core.segments": "`kcoretool segments`",
    "scan_fleet()": "`kcoretool fleet scan`",
    "the traceback shows where": "kcoretool --debug shows where",
}

# name=, name='value', name="value" or name=True, at a word start
_PARAM = re.compile(r"(?<![\w.])(" + "|".join(FLAGS) + r")=(?:'([^']*)'|\"([^\"]*)\"|(True)\b)?")
_CALL = re.compile("|".join(re.escape(c) for c in COMMANDS))


def _flag(m: re.Match[str]) -> str:
    flag = FLAGS[m.group(1)]
    value = m.group(2) if m.group(2) is not None else m.group(3)
    if value is not None:
        return f"{flag} {value}"
    if m.group(4):
        return flag
    # a bare ``name=`` before a placeholder ("core_path=PATH") keeps a space
    after = m.string[m.end():m.end() + 1]
    return flag + (" " if after.isalnum() or after == "/" else "")


def cli_words(text: str) -> str:
    """``text`` with the API's parameter and call names in the CLI's words."""
    return _CALL.sub(lambda m: COMMANDS[m.group(0)], _PARAM.sub(_flag, text))
