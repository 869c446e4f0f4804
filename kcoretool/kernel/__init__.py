# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Kernel access through drgn
--------------------------

Opening the kernel (:func:`open_program`), detecting the vmalloc layout
(:func:`detect_layout`), bounded walks (:mod:`kcoretool.kernel.walk`) and the
raw vmalloc readers (:mod:`kcoretool.kernel.vmalloc`).

Names are imported on first use (PEP 562), so importing a drgn-free
submodule such as :mod:`kcoretool.kernel.vmflags` does not import drgn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kcoretool.kernel.layout import Layout, detect_layout
    from kcoretool.kernel.program import (
        LIVE,
        debug_info_candidates,
        debuginfo_of,
        install_hint,
        open_program,
        vmcoreinfo_of,
    )
    from kcoretool.kernel.symbolize import Symbolizer
    from kcoretool.kernel.vmalloc import VmallocReader
    from kcoretool.kernel.vmflags import vm_flag_names
    from kcoretool.kernel.walk import (
        DEFAULT_LIMIT,
        WalkLog,
        WalkWarning,
        list_walk,
        llist_walk,
        xarray_walk,
    )

_HOME = {
    "DEFAULT_LIMIT": "walk",
    "LIVE": "program",
    "Layout": "layout",
    "Symbolizer": "symbolize",
    "VmallocReader": "vmalloc",
    "WalkLog": "walk",
    "WalkWarning": "walk",
    "debug_info_candidates": "program",
    "debuginfo_of": "program",
    "detect_layout": "layout",
    "install_hint": "program",
    "list_walk": "walk",
    "llist_walk": "walk",
    "open_program": "program",
    "vm_flag_names": "vmflags",
    "vmcoreinfo_of": "program",
    "xarray_walk": "walk",
}

__all__ = tuple(sorted(_HOME))


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
