"""
The Python API
--------------

One object per kernel under inspection, whether kcoretool opened it or a
drgn session already has it::

    >>> import kcoretool
    >>> k = kcoretool.open_kernel("/var/crash/vmcore", vmlinux="vmlinux-6.12")
    >>> k = kcoretool.from_program(prog)        # inside drgn
    >>> model = k.vmalloc()                     # snapshot: areas, blocks, holes
    >>> data, report = k.read(0xffffc90000123000, 8192)
    >>> report.pages_by_state()
    {'data': 2}

:class:`Kernel` ties the layers together -- the core file (when there is
one), the drgn Program, the vmalloc model and the page-table reader -- and
caches each.  Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any, BinaryIO, Dict, Optional, Tuple

from kcoretool.errors import KcoreToolError
from kcoretool.reader.report import PageRun, ReadReport

__all__ = ("Kernel", "from_program", "open_kernel")


class TaskMemory:
    """Processes, their VMAs and their memory (issue 13)::

        >>> [t.comm for t in k.tasks().tasks][:2]
        ['python', 'kthreadd']
        >>> print(k.vmas(1).maps_text())          # what /proc/1/maps said
        >>> data, report = k.read_user(1, 0x5644ef8e2000, 4096)

    Mixed into :class:`Kernel` (which provides ``prog``, ``live``,
    ``walker()`` and ``read_phys_source()``)."""

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
        walker = PageTableWalker(read_phys, tr.phys, levels=kwalker.levels, sme_mask=kwalker.sme_mask)
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

        return UserReader(
            _Fresh(vmas) if self.live else vmas, walker, read_phys,  # type: ignore[attr-defined]
            page_cache=page_cache_lookup(self.prog, consts["page_size"], consts["vmemmap"]),
            zero_pfns=(consts["zero_pfn"], consts["huge_zero_pfn"]),
            nr_swapfiles=consts["nr_swapfiles"], revalidate=revalidate,
            mm_seq=(lambda: getattr(r.read_mm(t.mm), "mm_lock_seq", None)) if self.live else None,  # type: ignore[attr-defined]
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
        if sink is not None:
            return None, self.user_reader(pid).read(addr, size, sink)
        buf = io.BytesIO()
        report = self.user_reader(pid).read(addr, size, buf)
        return buf.getvalue(), report


class Kernel(TaskMemory):
    """A kernel to inspect: a drgn Program and, when kcoretool opened the
    file, the :class:`kcoretool.source.Core` it came from.  Tasks, VMAs and
    user memory: :class:`TaskMemory`."""

    def __init__(self, prog, core=None) -> None:
        self.prog = prog
        self.core = core
        self._model = None
        self._walker = None
        self._readers: dict = {}

    @property
    def live(self) -> bool:
        import drgn

        return bool(self.prog.flags & drgn.ProgramFlags.IS_LIVE)

    # -- the model -------------------------------------------------------------

    def vmalloc(self, refresh: bool = False):
        """The :class:`kcoretool.model.VmallocModel` snapshot (cached; a live
        kernel changes, ``refresh=True`` takes a new one)."""
        if self._model is None or refresh:
            from kcoretool.model import from_program as model_from_program

            self._model = model_from_program(self.prog)
            self._readers.clear()
        return self._model

    # -- physical memory and page tables ---------------------------------------

    def read_phys_source(self):
        """``read_phys(addr, size)``: the core file's physical segments when
        kcoretool opened an ELF core (it knows which bytes a dump left out),
        otherwise drgn (kdump files, programs from a drgn session)."""
        from kcoretool.reader.sources import core_phys_reader, program_phys_reader

        if self.core is not None and self.core.kind in ("kcore", "elf-vmcore"):
            return core_phys_reader(self.core)
        return program_phys_reader(self.prog)

    def vmcoreinfo(self):
        from kcoretool.kernel.program import vmcoreinfo_of

        if self.core is not None and self.core.vmcoreinfo is not None:
            return self.core.vmcoreinfo
        info = vmcoreinfo_of(self.prog)
        if info is None:
            raise KcoreToolError("the kernel's VMCOREINFO is not available; cannot walk its page tables")
        return info

    def walker(self):
        if self._walker is None:
            from kcoretool.reader.sources import walker_from_vmcoreinfo

            self._walker = walker_from_vmcoreinfo(self.vmcoreinfo(), self.read_phys_source())
        return self._walker

    def reader(self, *, force_io: bool = False, sparse: bool = False):
        """A :class:`kcoretool.reader.VmallocReader` over the current model
        (one per option set, until the model is refreshed)."""
        from kcoretool.reader.vread import VmallocReader

        model = self.vmalloc()
        key = (force_io, sparse)
        if key in self._readers:
            return self._readers[key]
        self._readers[key] = reader = VmallocReader(
            model,
            self.read_phys_source(),
            self.walker(),
            revalidate=self._revalidator() if self.live else None,
            force_io=force_io,
            sparse=sparse,
            missing_state="unreadable" if self.live else "excluded",
        )
        return reader

    def read(
        self,
        addr: int,
        size: int,
        sink: Optional[BinaryIO] = None,
        *,
        via: str = "pagetable",
        force_io: bool = False,
        sparse: bool = False,
    ) -> Tuple[Optional[bytes], ReadReport]:
        """Read kernel virtual memory with per-page provenance.

        ``via="pagetable"`` (the default, also ``"auto"``) walks the page
        tables and reads physical pages; ``via="kcore"`` reads through the
        live kernel's own vread (the /proc/kcore vmalloc segment), for
        comparison.  With no ``sink`` the bytes are returned."""
        out = sink if sink is not None else io.BytesIO()
        if via in ("pagetable", "auto"):
            report = self.reader(force_io=force_io, sparse=sparse).read(addr, size, out)
        elif via == "kcore":
            report = self._read_kcore(addr, size, out)
        else:
            raise KcoreToolError(f"unknown read path {via!r}; use pagetable, kcore or auto")
        return (out.getvalue() if sink is None else None), report

    def _read_kcore(self, addr: int, size: int, sink: BinaryIO) -> ReadReport:
        if self.core is None or self.core.kind != "kcore":
            raise KcoreToolError("--via kcore reads through /proc/kcore: it needs the live kernel")
        report = ReadReport(addr, size, "kcore")
        from kcoretool.reader.vread import CHUNK

        for lo in range(addr, addr + size, CHUNK):
            n = min(CHUNK, addr + size - lo)
            sink.write(self.core.read(lo, n))
            report.add(PageRun(lo, n, "kcore"))
        return report

    # -- live revalidation -----------------------------------------------------

    def _revalidator(self):
        """``revalidate(area)``: the area as the kernel has it now, or None
        if its vmap_area no longer describes the same range."""
        from kcoretool.kernel.vmalloc import VmallocReader as RawReader

        raw = RawReader(self.prog, self.vmalloc().layout)

        def revalidate(area):
            va = raw.read_va(area.address, area.node)
            if va is None:
                return None
            start, end, vm = va.start, va.end, va.vm
            if (start, end) != (area.start, area.end):
                return None
            if area.vm is None:
                return area if not vm else None
            if vm != area.vm.address:
                return None
            v = raw.read_vm(vm)
            if v is None:
                return None
            now = dataclasses.replace(
                area.vm, addr=v.addr, size=v.size, flags=v.flags, nr_pages=v.nr_pages,
                caller=v.caller, pages_array=v.pages,
            )
            return area if now == area.vm else dataclasses.replace(area, vm=now)

        return revalidate


def open_kernel(core_path: Optional[str] = None, vmlinux: Optional[str] = None, *,
                debuginfo: str = "auto") -> Kernel:
    """Open the running kernel (``core_path`` None or ``/proc/kcore``) or a
    vmcore, with its types and symbols: DWARF from ``vmlinux`` or the
    standard places, else (``debuginfo="auto"``) the kernel's BTF and
    kallsyms; ``debuginfo="dwarf"`` or ``"btf"`` forces one."""
    from kcoretool.kernel import open_program
    from kcoretool.source import open_core

    path = core_path or "/proc/kcore"
    core = open_core(path)  # one clear line for anything that is not a core
    prog = open_program(path, vmlinux, debuginfo=debuginfo)
    return Kernel(prog, core)


def from_program(prog) -> Kernel:
    """Wrap a drgn Program the user already has (e.g. in a drgn session)."""
    return Kernel(prog)
