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

__all__ = ("Kernel", "diff", "from_program", "load_snapshot", "open_core", "open_kernel", "__version__")

# The public API, imported on first use so `import kcoretool` (and the CLI's
# start-up) stays light.
_LAZY = {
    "Kernel": "kcoretool.api",
    "from_program": "kcoretool.api",
    "open_kernel": "kcoretool.api",
    "load_snapshot": "kcoretool.api",
    "diff": "kcoretool.api",
    "open_core": "kcoretool.source",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kcoretool' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
