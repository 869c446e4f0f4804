# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Reader
------

Kernel memory read page by page with the state of every page
(:class:`ReadReport`): :class:`VmallocReader` follows ``vread_iter()``
through the page tables (:class:`PageTableWalker`), with the optimistic
read, revalidate and bounded retry loop of ``read_kcore_iter()`` live;
:class:`UserReader` reads a process's memory the same way;
:class:`KcoreChecker` compares /proc/kcore with the page tables.

Names are imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

if TYPE_CHECKING:
    from kcoretool.reader.check import DEFECTS, AreaCheck, KcoreChecker, Mismatch
    from kcoretool.reader.pagetable import PageTableWalker, Translation
    from kcoretool.reader.report import PAGE_STATES, ZERO_STATES, PageRun, ReadReport
    from kcoretool.reader.uread import UserReader
    from kcoretool.reader.vread import VmallocReader

_HOME = {
    "AreaCheck": "check",
    "DEFECTS": "check",
    "KcoreChecker": "check",
    "Mismatch": "check",
    "PAGE_STATES": "report",
    "PageRun": "report",
    "PageTableWalker": "pagetable",
    "ReadReport": "report",
    "Translation": "pagetable",
    "UserReader": "uread",
    "VmallocReader": "vread",
    "ZERO_STATES": "report",
}

__all__ = tuple(sorted(_HOME))


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def __dir__() -> List[str]:
    return sorted({*globals(), *__all__})
