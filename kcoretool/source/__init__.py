"""
Sources
-------

Where memory comes from: /proc/kcore and ELF vmcores (pyelftools), and
kdump-compressed files (drgn/libkdumpfile).  Nothing here knows about
vmalloc; it only turns addresses into bytes and describes the file.
"""

from kcoretool.source.core import (
    Core,
    NoteInfo,
    Notes,
    PrPsInfo,
    PrStatus,
    ReadResult,
    Segment,
)
from kcoretool.source.open import open_core
from kcoretool.source.vmcoreinfo import VmcoreInfo

__all__ = (
    "Core",
    "NoteInfo",
    "Notes",
    "PrPsInfo",
    "PrStatus",
    "ReadResult",
    "Segment",
    "VmcoreInfo",
    "open_core",
)
