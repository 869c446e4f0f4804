# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Kernel access through drgn
--------------------------

Opening the kernel (:func:`open_program`), detecting the vmalloc layout
(:func:`detect_layout`) and bounded walks (:mod:`kcoretool.kernel.walk`).
"""

from __future__ import annotations

from kcoretool.kernel.layout import Layout, detect_layout
from kcoretool.kernel.program import (
    LIVE,
    debug_info_candidates,
    debuginfo_of,
    install_hint,
    open_program,
)
from kcoretool.kernel.vmalloc import Symbolizer, VmallocReader, vm_flag_names
from kcoretool.kernel.walk import (
    DEFAULT_LIMIT,
    WalkLog,
    WalkWarning,
    list_walk,
    llist_walk,
    rbtree_walk,
    xarray_walk,
)

__all__ = (
    "DEFAULT_LIMIT",
    "LIVE",
    "Layout",
    "Symbolizer",
    "VmallocReader",
    "WalkLog",
    "WalkWarning",
    "debug_info_candidates",
    "debuginfo_of",
    "detect_layout",
    "install_hint",
    "list_walk",
    "llist_walk",
    "open_program",
    "rbtree_walk",
    "vm_flag_names",
    "xarray_walk",
)
