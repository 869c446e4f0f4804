# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Kernel access through drgn
--------------------------

Opening the kernel (:func:`open_program`), detecting the vmalloc layout
(:func:`detect_layout`), bounded walks (:mod:`kcoretool.kernel.walk`) and the
raw vmalloc readers (:mod:`kcoretool.kernel.vmalloc`).

The names are the ``__all__`` of the submodules below, imported on first
use (:mod:`kcoretool._face`), so importing a drgn-free submodule such as
:mod:`kcoretool.kernel.vmflags` does not import drgn.
"""

from __future__ import annotations

from kcoretool._face import face

__getattr__, __dir__ = face(__name__, ("layout", "program", "symbolize", "vmalloc", "vmflags", "walk"),
                           lambda: globals())
