"""
kcoretool
=========

Inspect and read Linux kernel memory -- vmalloc areas, vm_map_ram areas and
the pieces of vmap blocks -- from a live ``/proc/kcore`` or a saved vmcore.

Data flows one way through the package:

``source`` (ELF cores, kdump files) -> ``kernel`` (drgn walks of the
kernel's bookkeeping) -> ``model`` (plain dataclasses) -> ``reader``
(page-by-page reads with provenance) -> ``cli`` (the ``kcoretool`` command).

The library never prints; errors are :class:`kcoretool.errors.KcoreToolError`.
"""

__version__ = "0.1.0"
