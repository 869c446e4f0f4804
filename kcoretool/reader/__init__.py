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

The names are the ``__all__`` of the submodules below, imported on first
use (:mod:`kcoretool._face`).
"""

from __future__ import annotations

from kcoretool._face import face

__getattr__, __dir__ = face(__name__, ("check", "pagetable", "report", "uread", "vread"), lambda: globals())
