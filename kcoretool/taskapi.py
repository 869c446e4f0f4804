# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Task memory in the Python API
-----------------------------

The part of :class:`kcoretool.api.Kernel` that is about processes::

    >>> k = kcoretool.open_kernel("vmcore")
    >>> [t.comm for t in k.tasks().tasks][:3]
    ['systemd', 'kthreadd', 'pool_workqueue_']
    >>> print(k.vmas(1).maps_text())          # what /proc/1/maps said
    >>> data, report = k.read_user(1, 0x55d0c0a00000, 4096)
    >>> report.pages_by_state()
    {'data': 1}

Nothing here prints.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO, Dict, Optional, Tuple

from kcoretool.errors import KcoreToolError
from kcoretool.reader.report import ReadReport

__all__ = ("TaskMemory",)


class TaskMemory:
    """Mixed into :class:`kcoretool.api.Kernel` (which provides ``prog``,
    ``core``, ``live``, ``walker()``, ``read_phys_source()``)."""

    prog: Any
    _task_reader: Any = None

    def task_reader(self):
        """The raw :class:`kcoretool.kernel.task.TaskReader` (cached)."""
        if self._task_reader is None:
            from kcoretool.kernel.task import TaskReader

            try:
                self._task_reader = TaskReader(self.prog)
            except LookupError as e:
                raise KcoreToolError(f"the kernel's types lack what task memory needs: {e}") from None
        return self._task_reader

    def task_layout(self):
        return self.task_reader().layout

    def tasks(self, threads: bool = False):
        """A :class:`kcoretool.model.task.TaskList`: every process (or thread)."""
        from kcoretool.model.task import build_task_list

        return build_task_list(self.task_reader(), threads=threads)

    def raw_task(self, pid: int):
        from kcoretool.model.task import find_task

        t = find_task(self.task_reader(), pid)
        if t is None:
            raise KcoreToolError(f"no task with pid {pid}; `kcoretool task list` shows them")
        return t

    def vmas(self, pid: int):
        """A :class:`kcoretool.model.task.VmaList`: the task's VMAs, as
        /proc/PID/maps lists them."""
        from kcoretool.model.task import build_vma_list

        t = self.raw_task(pid)
        if not t.mm:
            raise KcoreToolError(f"pid {pid} ({t.comm}) is a kernel thread: it has no user memory")
        return build_vma_list(self.task_reader(), t)

    def user_reader(self, pid: int):
        """A :class:`kcoretool.reader.uread.UserReader` for the task."""
        from kcoretool.model.task import build_vma_list, make_vma
        from kcoretool.reader.pagetable import PageTableWalker
        from kcoretool.reader.uread import UserReader, page_cache_lookup

        r = self.task_reader()
        t = self.raw_task(pid)
        if not t.mm:
            raise KcoreToolError(f"pid {pid} ({t.comm}) is a kernel thread: it has no user memory")
        vmas = build_vma_list(r, t)
        raw_mm = r.read_mm(t.mm)
        if raw_mm is None:
            raise KcoreToolError(f"pid {pid}: its mm_struct {t.mm:#x} is unreadable")
        kwalker = self.walker()  # type: ignore[attr-defined]
        tr = kwalker.translate(raw_mm.pgd)
        if tr is None:
            raise KcoreToolError(f"pid {pid}: its page-table root {raw_mm.pgd:#x} is not mapped")
        read_phys = self.read_phys_source()  # type: ignore[attr-defined]
        walker = PageTableWalker(read_phys, tr.phys, levels=kwalker.levels,
                                 sme_mask=~kwalker._mask & ((1 << 52) - 1) & ~0xFFF)
        consts = self._user_constants()
        revalidate = None
        if self.live:  # type: ignore[attr-defined]
            def revalidate(addr: int):
                now = r.read_mm(t.mm)
                if now is None:
                    return None
                raw = r.vma_at(now, addr)
                return None if raw is None else make_vma(r, raw, now, t.fs_root)

            class _Fresh:
                """The VMA list, re-read when a revalidation fails."""

                def __init__(self, lst) -> None:
                    self.vmas = lst.vmas
                    self._lst = lst

                def find(self, addr: int):
                    return self._lst.find(addr)

                def refresh(self):
                    return _Fresh(build_vma_list(r, t))

            vmas = _Fresh(vmas)
        return UserReader(
            vmas, walker, read_phys,
            page_cache=page_cache_lookup(self.prog, consts["page_size"], consts["vmemmap"]),
            zero_pfns=(consts["zero_pfn"], consts["huge_zero_pfn"]),
            nr_swapfiles=consts["nr_swapfiles"], revalidate=revalidate,
            missing_state="unreadable" if self.live else "excluded",  # type: ignore[attr-defined]
        )

    def _user_constants(self) -> Dict[str, Any]:
        import drgn

        from kcoretool.kernel.task import _symbol_address

        p = self.prog

        def u(name: str, size: int = 8) -> Optional[int]:
            a = _symbol_address(p, name)
            if a is None:
                return None
            try:
                return p.read_u64(a) if size == 8 else p.read_u32(a)
            except drgn.FaultError:
                return None

        return {
            "zero_pfn": u("zero_pfn"),
            "huge_zero_pfn": u("huge_zero_pfn"),
            "nr_swapfiles": u("nr_swapfiles", 4),
            "vmemmap": u("vmemmap_base") or 0xFFFFEA0000000000,
            "page_size": int(drgn.sizeof(p.type("struct page"))),
        }

    def read_user(self, pid: int, addr: int, size: int, sink: Optional[BinaryIO] = None
                  ) -> Tuple[Optional[bytes], ReadReport]:
        """Read ``size`` bytes of pid's memory at ``addr``, with per-page states."""
        out = sink if sink is not None else io.BytesIO()
        report = self.user_reader(pid).read(addr, size, out)
        return (out.getvalue() if sink is None else None), report  # type: ignore[union-attr]
