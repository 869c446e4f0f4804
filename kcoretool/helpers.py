# SPDX-License-Identifier: LGPL-2.1-or-later
"""
kcoretool as drgn helpers
-------------------------

kcoretool's models in the shape of drgn's own helpers
(:mod:`drgn.helpers.linux`): functions that take the program first (and
default to drgn's default program, as drgn's helpers do), or a ``struct
task_struct *`` where a task is meant. An address, size or pid is anything
with ``__index__`` -- an int or a :class:`drgn.Object` such as
``va.va_start``.  A wrong argument raises
:class:`~kcoretool.errors.ArgumentError`; every error is a
:class:`~kcoretool.errors.KcoreToolError`.

The iterators yield kcoretool's records; each record's ``object()`` is the
kernel struct it mirrors, as a :class:`drgn.Object`:

=========================================  =================================
record                                     ``object()``
=========================================  =================================
:class:`~kcoretool.model.area.Area`        ``struct vmap_area *``
:class:`~kcoretool.model.area.VmStruct`    ``struct vm_struct *``
:class:`~kcoretool.model.area.VmapBlock`   ``struct vmap_block *``
:class:`~kcoretool.model.exec.ExecRegion`  ``struct vmap_area *`` holding it
:class:`~kcoretool.model.exec.BpfPack`     ``struct bpf_prog_pack *``
:class:`~kcoretool.model.exec.BpfProg`     ``struct bpf_prog *``
:class:`~kcoretool.model.task.Task`        ``struct task_struct *``
:class:`~kcoretool.model.task.Mm`          ``struct mm_struct *``
:class:`~kcoretool.model.task.Vma`         ``struct vm_area_struct *``
=========================================  =================================

Where the kernel's layout differs between versions -- busy areas in one
tree until 6.8 and in per-node trees since d093602919ad ("mm: vmalloc:
remove global vmap_area_root rb-tree") and 55c49fee57af ("mm/vmalloc:
remove vmap_area_list"), v6.9; VMAs in an rbtree and list until 6.0 and in
a maple tree since d4af56c5c7c6 ("mm: start tracking VMAs with maple
tree"), v6.1; BPF programs in packs since 57631054fae6 ("bpf: Introduce
bpf_prog_pack allocator"), v5.18 -- kcoretool detects it from the kernel's
symbols and struct members (:mod:`kcoretool.kernel.layout`), and the
records are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Tuple

from kcoretool._args import as_address, as_count
from kcoretool.api import Kernel, from_program
from kcoretool.errors import ArgumentError

if TYPE_CHECKING:
    import drgn

    from kcoretool.model.area import Area, VmapBlock
    from kcoretool.model.exec import BpfPack, ExecModel, ExecRegion
    from kcoretool.model.identify import WhatIs
    from kcoretool.model.task import Vma
    from kcoretool.model.vmalloc import VmallocModel
    from kcoretool.reader.report import ReadReport

__all__ = (
    "for_each_bpf_prog_pack",
    "for_each_exec_region",
    "for_each_task_vma",
    "for_each_vmalloc_area",
    "for_each_vmap_block",
    "exec_model",
    "kernel",
    "read_task_memory",
    "read_with_provenance",
    "vmalloc_model",
    "whatis",
)


def _prog(prog: Any) -> drgn.Program:
    import drgn

    if prog is None:
        try:
            return drgn.get_default_prog()
        except drgn.NoDefaultProgramError:
            raise ArgumentError("prog: no program given and drgn has no default program "
                                "(drgn.set_default_prog)") from None
    if not isinstance(prog, drgn.Program):
        raise ArgumentError(f"prog={type(prog).__name__}: not a drgn.Program")
    return prog


def _task(task: Any) -> Tuple[Kernel, int]:
    import drgn

    if not isinstance(task, drgn.Object):
        raise ArgumentError(f"task={type(task).__name__}: give a struct task_struct * (find_task(prog, pid))")
    t = task.type_.unqualified()
    target = t.type.unqualified() if t.kind == drgn.TypeKind.POINTER else None
    if target is None or target.kind != drgn.TypeKind.STRUCT or target.tag != "task_struct":
        raise ArgumentError(f"task: a {t.type_name()}, not a struct task_struct *")
    return from_program(task.prog_), int(task.pid)


def kernel(prog: Optional[drgn.Program] = None) -> Kernel:
    """The :class:`~kcoretool.api.Kernel` of ``prog`` (one per program:
    :func:`kcoretool.from_program`)."""
    return from_program(_prog(prog))


def vmalloc_model(prog: Optional[drgn.Program] = None, *, refresh: bool = False) -> VmallocModel:
    """The vmalloc bookkeeping of ``prog``'s kernel, cached per program
    (``refresh=True`` reads a live kernel again)."""
    return kernel(prog).vmalloc(refresh=refresh)


def for_each_vmalloc_area(prog: Optional[drgn.Program] = None, kinds: Optional[Iterable[str]] = None,
                          caller: Optional[str] = None, min_size: Any = 0,
                          include_lazy: bool = False) -> Iterator[Area]:
    """
    Iterate over the vmap areas, busy ones in address order (and with
    ``include_lazy``, freed ones not yet purged and the per-CPU pools).

    :param kinds: any of :data:`kcoretool.model.area.KINDS`.
    :param caller: a glob on the caller's symbol (``"bpf_*"``).
    :param min_size: bytes.
    :return: :class:`~kcoretool.model.area.Area` records;
        ``area.object()`` is the ``struct vmap_area *``.
    """
    return vmalloc_model(prog).select(kinds=list(kinds) if kinds is not None and not isinstance(kinds, str)
                                      else kinds, caller=caller, min_size=as_count(min_size, "min_size"),
                                      include_lazy=include_lazy)


def for_each_vmap_block(prog: Optional[drgn.Program] = None) -> Iterator[VmapBlock]:
    """Iterate over the per-CPU vmap blocks (vm_map_ram's pieces).

    :return: :class:`~kcoretool.model.area.VmapBlock` records;
        ``block.object()`` is the ``struct vmap_block *``."""
    return iter(vmalloc_model(prog).blocks)


def exec_model(prog: Optional[drgn.Program] = None, *, refresh: bool = False) -> ExecModel:
    """The executable memory of ``prog``'s kernel: module regions, BPF
    programs and packs, trampolines, kprobe and ftrace pages."""
    return kernel(prog).exec_memory(refresh=refresh)


def for_each_exec_region(prog: Optional[drgn.Program] = None, kinds: Optional[Iterable[str]] = None,
                         owner: Optional[str] = None) -> Iterator[ExecRegion]:
    """
    Iterate over the executable regions in address order.

    :param kinds: any of :data:`kcoretool.model.exec.EXEC_KINDS`.
    :param owner: a glob on the owner (module or program name).
    :return: :class:`~kcoretool.model.exec.ExecRegion` records;
        ``region.object()`` is the ``struct vmap_area *`` that holds it.
    """
    return exec_model(prog).select(kinds=list(kinds) if kinds is not None and not isinstance(kinds, str)
                                   else kinds, owner=owner)


def for_each_bpf_prog_pack(prog: Optional[drgn.Program] = None) -> Iterator[BpfPack]:
    """Iterate over the BPF program packs (v5.18+; none before).

    :return: :class:`~kcoretool.model.exec.BpfPack` records;
        ``pack.object()`` is the ``struct bpf_prog_pack *``."""
    return iter(exec_model(prog).packs)


def whatis(prog: Optional[drgn.Program], address: Any) -> WhatIs:
    """What holds ``address``: vmap area, block piece, BPF program, module
    region, task stack, slab object, direct map ... (``str()`` of the
    result is what ``kcoretool whatis`` prints)."""
    return kernel(prog).whatis(as_address(address, "address"))


def read_with_provenance(prog: Optional[drgn.Program], address: Any, size: Any, *,
                         via: str = "pagetable") -> Tuple[bytes, ReadReport]:
    """
    Read kernel virtual memory through the page tables, with the state of
    every page (``data``, ``zero-page``, ``not-present``, ``guard``,
    ``excluded`` ...): ``(bytes, ReadReport)``. A page the dump left out
    reads as zeros in the bytes and says so in the report; it is never
    passed off as data.
    """
    data, report = kernel(prog).read(as_address(address, "address"), as_count(size, "size"), via=via)
    assert data is not None
    return data, report


def for_each_task_vma(task: drgn.Object) -> Iterator[Vma]:
    """
    Iterate over a task's VMAs (``struct task_struct *``), in address
    order: the maple tree since v6.1, the VMA list before.

    :return: :class:`~kcoretool.model.task.Vma` records;
        ``vma.object()`` is the ``struct vm_area_struct *``.
    """
    k, pid = _task(task)
    return iter(k.vmas(pid).vmas)


def read_task_memory(task: drgn.Object, address: Any, size: Any) -> Tuple[bytes, ReadReport]:
    """Read a task's user memory (``struct task_struct *``) through its own
    page tables, with each page's state (``swapped``, ``file-not-cached``
    ...): ``(bytes, ReadReport)``."""
    k, pid = _task(task)
    data, report = k.read_user(pid, as_address(address, "address"), as_count(size, "size"))
    assert data is not None
    return data, report
