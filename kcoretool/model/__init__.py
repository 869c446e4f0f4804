# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Model
-----

Plain dataclasses describing kernel memory state, detached from drgn.
:func:`from_program` builds the vmalloc model from a :class:`drgn.Program`.

Names are imported on first use (PEP 562): the dataclasses in
:mod:`kcoretool.model.vmalloc` do not import drgn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

if TYPE_CHECKING:
    from kcoretool.model.area import KINDS, Area, FreeHole, VmapBlock, VmStruct
    from kcoretool.model.build import (
        EXEC_CALLERS,
        from_program,
        revalidator,
        vm_numa_counts,
        vm_page_physaddrs,
    )
    from kcoretool.model.identify import whatis
    from kcoretool.model.vmalloc import VmallocModel
    from kcoretool.model.vmallocinfo import vmallocinfo_lines

_HOME = {
    "Area": "area",
    "EXEC_CALLERS": "build",
    "FreeHole": "area",
    "KINDS": "area",
    "VmStruct": "area",
    "VmallocModel": "vmalloc",
    "VmapBlock": "area",
    "from_program": "build",
    "revalidator": "build",
    "vm_numa_counts": "build",
    "vm_page_physaddrs": "build",
    "vmallocinfo_lines": "vmallocinfo",
    "whatis": "identify",
}

__all__ = tuple(sorted(_HOME))


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def __dir__() -> List[str]:
    return sorted({*globals(), *__all__})
