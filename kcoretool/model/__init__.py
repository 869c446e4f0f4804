# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Model
-----

Plain dataclasses describing kernel memory state, detached from drgn.
:func:`from_program` builds the vmalloc model from a :class:`drgn.Program`.
"""

from __future__ import annotations

from kcoretool.model.build import (
    EXEC_CALLERS,
    from_program,
    vm_numa_counts,
    vm_page_physaddrs,
)
from kcoretool.model.vmalloc import KINDS, Area, FreeHole, VmallocModel, VmapBlock, VmStruct
from kcoretool.model.vmallocinfo import vmallocinfo_lines
from kcoretool.model.whatis import whatis

__all__ = (
    "Area",
    "EXEC_CALLERS",
    "FreeHole",
    "KINDS",
    "VmStruct",
    "VmallocModel",
    "VmapBlock",
    "from_program",
    "vm_numa_counts",
    "vm_page_physaddrs",
    "vmallocinfo_lines",
    "whatis",
)
