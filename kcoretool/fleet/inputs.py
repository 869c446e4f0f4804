# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Which files are dumps
---------------------

``fleet scan`` takes files, directories, globs and ``@listfile`` (one of
those per line, ``#`` comments).  A file named outright is scanned whatever
it holds (a file that is no dump becomes a row with its error); in a
directory (walked recursively, symbolic links to files followed, to
directories not) only files that start as a core does -- ELF, kdump
(``KDUMP   ``), makedumpfile's flattened format -- are taken, so
``/var/crash/*/vmcore-dmesg.txt`` is left alone.
"""

from __future__ import annotations

import glob
import os
from typing import Iterable, Iterator, List, Set, Tuple

from kcoretool.errors import ArgumentError

__all__ = ("CORE_MAGICS", "expand_inputs", "looks_like_core")

CORE_MAGICS = (b"\x7fELF", b"KDUMP   ", b"makedumpfile")
_GLOB_CHARS = set("*?[")


def looks_like_core(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head.startswith(CORE_MAGICS)


def _walk(directory: str) -> Iterator[str]:
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            if os.path.isfile(p) and looks_like_core(p):
                yield p


def _listfile(arg: str, seen: Set[str]) -> List[str]:
    path = arg[1:]
    if path in seen:
        raise ArgumentError(f"{arg}: the list file includes itself")
    seen.add(path)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ArgumentError(f"{arg}: cannot read the list file: {e.strerror}") from None
    base = os.path.dirname(path)
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            # relative entries are relative to the list file, as in a playlist
            out.append(line if line.startswith("@") or os.path.isabs(line) else os.path.join(base, line))
    return out


def expand_inputs(args: Iterable[str]) -> Tuple[List[str], List[str]]:
    """``(paths, warnings)``: the dump files ``args`` name, in order,
    each once; a warning for each name that matches nothing."""
    paths: List[str] = []
    warnings: List[str] = []
    seen: Set[str] = set()
    listfiles: Set[str] = set()
    todo = list(args)
    todo.reverse()
    while todo:
        arg = todo.pop()
        if arg.startswith("@") and not os.path.exists(arg):
            todo.extend(reversed(_listfile(arg, listfiles)))
            continue
        if os.path.isdir(arg):
            found = list(_walk(arg))
            if not found:
                warnings.append(f"{arg}: no dump files in this directory")
        elif os.path.exists(arg):
            found = [arg]
        elif _GLOB_CHARS & set(arg):
            found = []
            for m in sorted(glob.glob(arg, recursive=True)):
                found.extend(_walk(m) if os.path.isdir(m) else [m] if os.path.isfile(m) else [])
            if not found:
                warnings.append(f"{arg}: matches no file")
        else:
            warnings.append(f"{arg}: no such file or directory")
            found = []
        for p in found:
            a = os.path.abspath(p)
            if a not in seen:
                seen.add(a)
                paths.append(a)
    return paths, warnings
