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
from typing import BinaryIO, Optional, Tuple

from kcoretool.errors import KcoreToolError
from kcoretool.reader.report import PageRun, ReadReport
from kcoretool.taskapi import TaskMemory

__all__ = ("Kernel", "from_program", "open_kernel")


class Kernel(TaskMemory):
    """A kernel to inspect: a drgn Program and, when kcoretool opened the
    file, the :class:`kcoretool.source.Core` it came from.  Tasks, VMAs and
    user memory: :class:`kcoretool.taskapi.TaskMemory`."""

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
