# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Model
-----

Plain dataclasses describing kernel memory state, detached from drgn.
:func:`from_program` builds the vmalloc model from a :class:`drgn.Program`.

The names are the ``__all__`` of the submodules below, imported on first
use (:mod:`kcoretool._face`): the records in :mod:`kcoretool.model.area`
do not import drgn.
"""

from __future__ import annotations

from kcoretool._face import face

__getattr__, __dir__ = face(__name__, ("area", "build", "identify", "vmalloc", "vmallocinfo"), lambda: globals())
