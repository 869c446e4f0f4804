"""
kcoretool
=========

Inspect and read Linux kernel memory -- vmalloc areas, vm_map_ram areas and
the pieces of vmap blocks, executable memory, tasks and their VMAs -- from a
live ``/proc/kcore``, a saved vmcore, or a drgn session.

The API (``help(kcoretool.Kernel)`` for the whole of it)::

    import kcoretool
    k = kcoretool.open_kernel("vmcore")      # or /proc/kcore; vmlinux=, debuginfo=
    k = kcoretool.from_program(prog)         # any drgn Program (BTF loaded if needed)
    model = k.vmalloc()                      # VmallocModel: areas, lazy, blocks, holes
    area = model.find(0xffffc90000101010)    # Area; area.object(k.prog) is a drgn Object
    data, report = k.read(area.start, 8192)  # bytes + the state of every page
    print(k.whatis(0xffffc90000101010))      # WhatIs, as ``kcoretool whatis`` prints it
    k.exec_memory(), k.tasks(), k.vmas(1)    # exec memory, tasks, VMAs
    kcoretool.diff(kcoretool.load_snapshot("a.json"), k)

- :func:`open_kernel`, :func:`from_program` -> :class:`Kernel`;
  :func:`open_core` -> :class:`kcoretool.source.Core` (the ELF layer, no drgn);
- :func:`load_snapshot`, :func:`diff`: vmalloc state over time;
- errors: every one is a :class:`KcoreToolError` (:mod:`kcoretool.errors`).

Data flows one way through the package: ``source`` (ELF cores, kdump files)
-> ``debuginfo`` -> ``kernel`` (drgn walks) -> ``model`` (plain dataclasses)
-> ``reader`` (page-by-page reads with provenance) -> ``api`` -> ``cli``
and the drgn plugin (``kcoretool.drgn_plugin``). The library never prints.
Names load on first use, so ``import kcoretool`` stays light.
"""

from typing import List as _List

__version__ = "0.1.0"

__all__ = (
    "AccessError",
    "AddressError",
    "ArgumentError",
    "CoreFormatError",
    "DebugInfoError",
    "Kernel",
    "KcoreToolError",
    "KernelDataError",
    "LayoutError",
    "WhatIs",
    "__version__",
    "diff",
    "from_program",
    "load_snapshot",
    "open_core",
    "open_kernel",
)

# The public API, imported on first use so `import kcoretool` (and the CLI's
# start-up) stays light.
_LAZY = {
    "Kernel": "kcoretool.api",
    "from_program": "kcoretool.api",
    "open_kernel": "kcoretool.api",
    "load_snapshot": "kcoretool.api",
    "diff": "kcoretool.api",
    "open_core": "kcoretool.source",
    "WhatIs": "kcoretool.model.identify",
    "AccessError": "kcoretool.errors",
    "AddressError": "kcoretool.errors",
    "ArgumentError": "kcoretool.errors",
    "CoreFormatError": "kcoretool.errors",
    "DebugInfoError": "kcoretool.errors",
    "KcoreToolError": "kcoretool.errors",
    "KernelDataError": "kcoretool.errors",
    "LayoutError": "kcoretool.errors",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kcoretool' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> _List[str]:
    return sorted({*globals(), *__all__})
