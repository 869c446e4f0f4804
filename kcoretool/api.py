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
caches each.  It is also the only door the ``kcoretool`` command uses: what
the CLI needs, this module offers.  Nothing here prints, and nothing at
module level imports drgn (``kcoretool info`` never loads it).
"""

from __future__ import annotations

import functools
import io
from typing import (
    TYPE_CHECKING,
    Any,
    BinaryIO,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    TypeVar,
    cast,
)

from kcoretool._args import as_address, as_count, as_pid
from kcoretool.debuginfo.plan import DEBUGINFO_MODES, DebugInfoPlan, debug_info_candidates, plan_debuginfo
from kcoretool.errors import (
    AccessError,
    AddressError,
    ArgumentError,
    CoreFormatError,
    DebugInfoError,
    KcoreToolError,
    KernelDataError,
    LayoutError,
    translate,
)
from kcoretool.model.area import AREA_ROW_FIELDS, KINDS, Area, VmapBlock, VmStruct, check_kinds, row_getter
from kcoretool.model.area_json import iter_areas_json, iter_rows_json
from kcoretool.model.exec import EXEC_KINDS, ExecModel, ExecRegion
from kcoretool.model.vmalloc import VmallocModel
from kcoretool.reader.check import DEFECTS, AreaCheck, KcoreChecker, summarize
from kcoretool.reader.execaudit import REASONS, AuditFlag, CensusRange, ExecAudit
from kcoretool.reader.report import PAGE_STATES, ZERO_STATES, PageRun, ReadReport, check_range
from kcoretool.reader.vread import Sink
from kcoretool.source import Core, NoteInfo, open_core

if TYPE_CHECKING:
    import drgn

    from kcoretool.kernel.task import RawTask, TaskReader
    from kcoretool.kernel.task_layout import TaskLayout
    from kcoretool.model.diff import VmallocDiff
    from kcoretool.model.identify import WhatIs
    from kcoretool.model.snapshot import VmallocSnapshot
    from kcoretool.model.task import TaskList, VmaList
    from kcoretool.reader.pagetable import PageTableWalker
    from kcoretool.reader.uread import UserReader
    from kcoretool.reader.vread import VmallocReader
    from kcoretool.source.vmcoreinfo import VmcoreInfo

__all__ = (
    "READ_PATHS",
    "AccessError",
    "AddressError",
    "ArgumentError",
    "CoreFormatError",
    "DebugInfoError",
    "KcoreToolError",
    "KernelDataError",
    "LayoutError",
    "DEBUGINFO_MODES",
    "DEFECTS",
    "AREA_ROW_FIELDS",
    "EXEC_KINDS",
    "KINDS",
    "PAGE_STATES",
    "ZERO_STATES",
    "Area",
    "AreaCheck",
    "AuditFlag",
    "CensusRange",
    "ExecAudit",
    "REASONS",
    "Core",
    "DebugInfoPlan",
    "ExecModel",
    "ExecRegion",
    "Kernel",
    "NoteInfo",
    "ReadReport",
    "Sink",
    "VmStruct",
    "VmallocModel",
    "VmapBlock",
    "debug_info_candidates",
    "debuginfo_plan",
    "diff",
    "from_program",
    "iter_areas_json",
    "iter_rows_json",
    "row_getter",
    "caller_totals",
    "check_kinds",
    "check_range",
    "is_snapshot_file",
    "load_snapshot",
    "needs_pagetables",
    "open_core",
    "open_kernel",
    "summarize",
)

LIVE = "/proc/kcore"

#: ``Kernel.read(via=...)``, as the CLI's ``read --via`` (without ``elf``,
#: which reads the core file's segments: :meth:`Core.read_ex`).
READ_PATHS = ("auto", "pagetable", "kcore")

_F = TypeVar("_F", bound=Callable[..., Any])


def _release_of(args: Tuple[Any, ...]) -> Optional[str]:
    """The kernel release of a method's ``self``, for messages."""
    release = getattr(args[0], "release", None) if args else None
    return release if isinstance(release, str) else None


def _translated(fn: _F) -> _F:
    """Every exception the API raises is a :class:`KcoreToolError`: what
    damaged input raises below kcoretool (drgn's ``FaultError``, an
    ``OverflowError``...) becomes one (:func:`kcoretool.errors.translate`),
    with the original as ``__cause__``."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LayoutError as e:
            e.for_release(_release_of(args))
            raise
        except KcoreToolError:
            raise
        except Exception as e:
            known = translate(e, _release_of(args))
            if known is None:
                raise
            raise known from e

    return cast(_F, wrapper)


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

    def task_reader(self) -> TaskReader:
        """The raw :class:`kcoretool.kernel.task.TaskReader` (cached)."""
        if self._task_reader is None:
            from kcoretool.kernel.task import TaskReader

            try:
                self._task_reader = TaskReader(self.prog)
            except LookupError as e:
                raise KcoreToolError(f"the kernel's types lack what task memory needs: {e}") from None
        return self._task_reader

    def task_layout(self) -> TaskLayout:
        return self.task_reader().layout

    @_translated
    def tasks(self, threads: bool = False) -> TaskList:
        """Every process (thread-group leader), or every thread too.

        :param threads: list each thread, not only each process (``ps -T``).
        :returns: a :class:`kcoretool.model.task.TaskList` (``.tasks``: each a
            ``Task`` with pid, tgid, comm, state, its ``Mm`` and parent).
        :raises KcoreToolError: the kernel's types lack the task structures.
        """
        from kcoretool.model.task import build_task_list

        return build_task_list(self.task_reader(), threads=threads)

    @_translated
    def raw_task(self, pid: Any) -> RawTask:
        from kcoretool.kernel.walk import WalkLog

        pid = as_pid(pid)

        log = WalkLog()
        t = self.task_reader().find_task(pid, log)
        if t is None:
            if log:
                n = len(log.messages) + log.suppressed
                raise KernelDataError(f"pid {pid} is not among the tasks that could be read: {n} task(s) or task "
                                      f"lists are unreadable (first: {log.messages[0]}); the core is damaged or "
                                      "lacks those pages")
            raise KcoreToolError(f"no task with pid {pid}; Kernel.tasks() shows them")
        return t

    @_translated
    def vmas(self, pid: Any) -> VmaList:
        """The task's VMAs, walked from its maple tree (6.1+) or VMA list,
        bounded and cycle-safe.

        :param pid: the process id, or its ``struct task_struct *``.
        :returns: a :class:`kcoretool.model.task.VmaList`; ``maps_text()`` is
            /proc/PID/maps byte for byte, each ``Vma`` carries its lock state.
        :raises KcoreToolError: no such pid, or a kernel thread (no mm).
        """
        from kcoretool.model.task import build_vma_list

        pid = as_pid(pid)
        t = self.raw_task(pid)
        if not t.mm:
            raise KcoreToolError(f"pid {pid} ({t.comm}) is a kernel thread: it has no user memory")
        return build_vma_list(self.task_reader(), t)

    @_translated
    def user_reader(self, pid: Any) -> UserReader:
        """A :class:`kcoretool.reader.uread.UserReader` for the task (a pid
        or ``struct task_struct *``): its page tables, its VMAs (re-read
        live when a revalidation fails)."""
        from kcoretool.reader.uread import user_reader_for

        pid = as_pid(pid)
        t = self.raw_task(pid)
        if not t.mm:
            raise KcoreToolError(f"pid {pid} ({t.comm}) is a kernel thread: it has no user memory")
        return user_reader_for(self.task_reader(), t, self.walker(),  # type: ignore[attr-defined]
                               self.read_phys_source(), live=self.live)  # type: ignore[attr-defined]

    @_translated
    def read_user(self, pid: Any, addr: Any, size: Any, sink: Optional[BinaryIO] = None
                  ) -> Tuple[Optional[bytes], ReadReport]:
        """Read a process's memory through its own page tables.

        :param pid: the process id, or its ``struct task_struct *``.
        :param addr: a user virtual address.
        :param size: bytes to read.
        :param sink: where the bytes go; without one they are returned.
        :returns: ``(bytes or None, ReadReport)``; each page's state is
            ``data``, ``not-present``, ``swapped`` (the swap type and offset in
            ``detail``), ``file-not-cached``, ``zero-page``, ``excluded`` or
            ``no-vma``.
        :raises AddressError: the range runs past the top of the 64-bit
            address space (as :meth:`Kernel.read`).
        """
        addr, size = as_address(addr, "addr"), as_count(size, "size")
        check_range(addr, size)
        if sink is not None:
            return None, self.user_reader(pid).read(addr, size, sink)
        buf = io.BytesIO()
        report = self.user_reader(pid).read(addr, size, buf)
        return buf.getvalue(), report


class Kernel(TaskMemory):
    """A kernel to inspect: a drgn Program and, when kcoretool opened the
    file, the :class:`kcoretool.source.Core` it came from."""

    def __init__(self, prog: drgn.Program, core: Optional[Core] = None) -> None:
        #: the :class:`drgn.Program` (``struct`` objects, drgn's helpers)
        self.prog = prog
        #: the core file, when kcoretool opened it
        self.core = core
        self._model: Optional[VmallocModel] = None
        self._exec: Optional[ExecModel] = None
        self._exec_vm: Optional[VmallocModel] = None
        self._walker: Optional[PageTableWalker] = None
        self._readers: Dict[Tuple[bool, bool], VmallocReader] = {}
        if prog is not None:
            if "kcoretool_kernel" not in prog.cache:
                prog.cache["kcoretool_kernel"] = self  # one Kernel per Program (from_program)
            # drgn's default program is left alone: set by the first Kernel, it
            # made record.object() of a second dump answer from the first one.

    def close(self) -> None:
        """Close the core file kcoretool opened (a program from a drgn
        session stays the session's) and drop the cached models."""
        if self.core is not None:
            self.core.close()
        self.forget()

    def forget(self) -> None:
        """Drop the cached models: the next call reads the kernel again
        (live, each ``%kcoretool`` command starts from this)."""
        self._model = self._exec = self._walker = None
        self._readers.clear()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def debuginfo(self) -> Optional[DebugInfoPlan]:
        """Where the types and symbols come from: a :class:`DebugInfoPlan`
        whose ``kind`` is ``"dwarf"`` or ``"btf"``."""
        from kcoretool.kernel.program import debuginfo_of

        return debuginfo_of(self.prog)

    @property
    def live(self) -> bool:
        import drgn

        return bool(self.prog.flags & drgn.ProgramFlags.IS_LIVE)

    @property
    def release(self) -> str:
        """The kernel's release (``uname -r``), or ``"unknown"``."""
        from kcoretool.kernel.program import kernel_release

        return kernel_release(self.prog)

    # -- symbols -----------------------------------------------------------------

    @_translated
    def symbol_address(self, name: str) -> Optional[int]:
        """The address of a kernel symbol, or None if the kernel has none."""
        from kcoretool.kernel.program import load_symbols

        for attempt in range(2):
            try:
                return int(self.prog.symbol(name).address)
            except LookupError:
                if attempt == 0:
                    load_symbols(self.prog)  # a module's, or one only kallsyms has
        return None

    # -- the model -------------------------------------------------------------

    @_translated
    def vmalloc(self, refresh: bool = False) -> VmallocModel:
        """The vmalloc bookkeeping: busy areas, lazy and pooled areas, vmap
        blocks and free holes, with callers named as ``%pS`` names them.

        :param refresh: read the kernel again (live, it changes); otherwise
            the model is cached.
        :returns: a :class:`kcoretool.model.vmalloc.VmallocModel`; each
            ``Area``'s ``object(prog)`` is its ``struct vmap_area *``.
        """
        if self._model is None or refresh:
            from kcoretool.model.build import from_program as model_from_program

            self._model = model_from_program(self.prog)
            self._readers.clear()
        return self._model

    @_translated
    def exec_memory(self, refresh: bool = False) -> ExecModel:
        """The :class:`kcoretool.model.exec.ExecModel`: module regions, BPF
        programs in their packs, trampolines, kprobe and ftrace pages
        (cached like :meth:`vmalloc`)."""
        if self._exec is None or refresh:
            from kcoretool.model.exec import exec_from_program

            vm = self._model
            if vm is None or refresh:
                # Only to place each allocation in its busy area: no blocks,
                # lazy or free walks, no caller symbols (a ms each).
                from kcoretool.model.build import from_program as model_from_program

                vm = model_from_program(self.prog, blocks=False, lazy=False, free=False, symbolize=False,
                                        page_tables=False)
            self._exec_vm = vm
            self._exec = exec_from_program(self.prog, vm)
        return self._exec

    @_translated
    def exec_audit(self, refresh: bool = False) -> ExecAudit:
        """Every executable page of the kernel half of the page tables and
        its owner, with what looks wrong: an
        :class:`kcoretool.reader.execaudit.ExecAudit` (``flags`` empty on
        a clean kernel; each :class:`~kcoretool.reader.execaudit.AuditFlag`
        has a ``reason`` from :data:`~kcoretool.reader.execaudit.REASONS`).
        Live, ``refresh=True`` reads the kernel and its page tables again."""
        from kcoretool.kernel.symbolize import Symbolizer
        from kcoretool.reader.execaudit import audit_exec

        model = self.exec_memory(refresh=refresh)
        walker = self.walker()
        if refresh:
            walker.invalidate()
        vm = self._exec_vm if self._exec_vm is not None else self.vmalloc()
        return audit_exec(self.prog, model, vm, walker.executable_runs(), Symbolizer(self.prog))

    def vmallocinfo_lines(self, warnings: Optional[List[str]] = None) -> Iterator[str]:
        """``/proc/vmallocinfo`` of this kernel, line by line, callers named
        exactly as ``%pS`` names them.  Without per-node page counts (a
        NUMA kernel whose node data cannot be read), a line in ``warnings``
        says so."""
        from kcoretool.kernel.symbolize import Symbolizer
        from kcoretool.model.build import vm_numa_counts
        from kcoretool.model.vmallocinfo import vmallocinfo_lines

        model = self.vmalloc()
        numa: Optional[Callable[[VmStruct], Dict[int, int]]] = None
        if model.numa:
            try:
                numa = vm_numa_counts(self.prog)
            except (LookupError, ValueError) as e:
                if warnings is not None:
                    warnings.append(f"no NUMA page counts ({e})")
        return vmallocinfo_lines(model, numa, Symbolizer(self.prog, kallsyms_size=True))

    @_translated
    def page_physaddrs(self, vm: VmStruct) -> List[int]:
        """The physical address of each page of a vm_struct area."""
        from kcoretool.model.build import vm_page_physaddrs

        return vm_page_physaddrs(self.prog, vm)

    @_translated
    def whatis(self, addr: Any) -> WhatIs:
        """What ``addr`` is: a :class:`kcoretool.model.identify.WhatIs`
        listing each thing that holds it (vmap area, block piece, BPF
        program, module region, task stack, slab object, direct map...);
        ``str()`` of it is what ``kcoretool whatis`` prints.

        :raises ArgumentError: ``addr`` is not a 64-bit address (an int,
            or a drgn Object of integer or pointer type).
        """
        from kcoretool.model.identify import whatis

        addr = as_address(addr, "addr")
        return whatis(self.prog, addr, self.vmalloc(), self.exec_memory())

    @_translated
    def snapshot(self, refresh: bool = False) -> VmallocSnapshot:
        """The model with what places it in time -- release, boot id, KASLR
        offset, time -- as a :class:`kcoretool.model.snapshot.VmallocSnapshot`
        (``refresh=True`` re-reads a live kernel first)."""
        import time

        from kcoretool.kernel.identity import boot_id, ktime_get_real_seconds
        from kcoretool.model.snapshot import VmallocSnapshot

        live = self.live
        now = int(time.time())
        model = self.vmalloc(refresh=refresh)
        info = None
        try:
            info = self.vmcoreinfo()
        except KcoreToolError:
            pass
        when: Optional[int] = now
        when_source = "clock when the snapshot was taken"
        if not live:
            when = info.crash_time if info is not None else None
            when_source = "crash time (VMCOREINFO CRASHTIME)"
            if when is None:
                when = ktime_get_real_seconds(self.prog)
                when_source = "the kernel's clock in the dump (timekeeper xtime_sec)"
            if when is None:
                when_source = "unknown: no CRASHTIME and no readable timekeeper"
        bid, bid_source = boot_id(self.prog)
        if self.core is not None:
            kind: Optional[str] = self.core.kind
            path: Optional[str] = self.core.path
        else:
            kind, path = ("live" if live else None), None
        owners: Dict[int, str] = {}
        if model.has_kind("exec"):
            owners = self.exec_memory(refresh=refresh).area_owners()
        return VmallocSnapshot(
            model=model, release=model.release, boot_id=bid, boot_id_source=bid_source, owners=owners,
            kaslr_offset=info.kernel_offset if info is not None else None,
            time=when, time_source=when_source, source_path=path, source_kind=kind, live=live,
        )

    @_translated
    def panic_state(self) -> Tuple[Optional[bool], Optional[str]]:
        """``(panicking, reason)``: whether a CPU had entered ``panic()``
        (``panic_cpu`` set: a kdump after a panic), and the ``Kernel panic -
        not syncing:`` reason from the kernel log when drgn can read it
        (DWARF); None where the dump cannot say."""
        from kcoretool.kernel.panic import panic_state

        return panic_state(self.prog)

    # -- physical memory and page tables ---------------------------------------

    def read_phys_source(self) -> Callable[[int, int], bytes]:
        """``read_phys(addr, size)``: the core file's physical segments when
        kcoretool opened an ELF core (it knows which bytes a dump left out),
        otherwise drgn (kdump files, programs from a drgn session)."""
        from kcoretool.reader.sources import core_phys_reader, program_phys_reader

        if self.core is not None and self.core.kind in ("kcore", "elf-vmcore"):
            return core_phys_reader(self.core)
        if self.core is not None and self.core.kind == "kdump":
            return program_phys_reader(self.prog, getattr(self.core, "truncated_at", None))
        return program_phys_reader(self.prog)

    @_translated
    def vmcoreinfo(self) -> VmcoreInfo:
        from kcoretool.kernel.program import vmcoreinfo_of

        if self.core is not None and self.core.vmcoreinfo is not None:
            return self.core.vmcoreinfo
        info = vmcoreinfo_of(self.prog)
        if info is None:
            raise KcoreToolError("the kernel's VMCOREINFO is not available; cannot walk its page tables")
        return info

    @_translated
    def walker(self) -> PageTableWalker:
        if self._walker is None:
            from kcoretool.reader.sources import walker_from_vmcoreinfo

            self._walker = walker_from_vmcoreinfo(self.vmcoreinfo(), self.read_phys_source())
        return self._walker

    @_translated
    def reader(self, *, force_io: bool = False, sparse: bool = False) -> VmallocReader:
        """A :class:`kcoretool.reader.vread.VmallocReader` over the current
        model (one per option set, until the model is refreshed)."""
        from kcoretool.reader.vread import VmallocReader

        model = self.vmalloc()
        key = (force_io, sparse)
        if key in self._readers:
            return self._readers[key]
        revalidate = None
        if self.live:
            from kcoretool.model.build import revalidator

            revalidate = revalidator(self.prog, model)
        self._readers[key] = reader = VmallocReader(
            model,
            self.read_phys_source(),
            self.walker(),
            revalidate=revalidate,
            force_io=force_io,
            sparse=sparse,
            missing_state="unreadable" if self.live else "excluded",
        )
        return reader

    @_translated
    def read(
        self,
        addr: Any,
        size: Any,
        sink: Optional[Sink] = None,
        *,
        via: str = "pagetable",
        force_io: bool = False,
        sparse: bool = False,
    ) -> Tuple[Optional[bytes], ReadReport]:
        """Read ``size`` bytes of kernel virtual memory at ``addr`` with the
        state of every page (a :class:`ReadReport`).

        :param via: ``"pagetable"`` (the default) walks the page tables and
            reads physical pages with vmalloc semantics; ``"kcore"`` reads
            through the live kernel's own vread (/proc/kcore), for
            comparison; ``"auto"`` is the CLI's ``read --via auto``: the
            page tables where the core has no plain copy of the address
            (vmalloc and module addresses), else the core's segments.
        :param sink: where the bytes go (anything with ``write``); without
            one they are returned.
        :raises ArgumentError: a negative size or an unknown ``via``.
        :raises AddressError: the range runs past the 64-bit address space.
        """
        addr = as_address(addr, "addr")
        if not isinstance(size, int) or isinstance(size, bool):
            size = as_count(size, "size")
        check_range(addr, size)
        if via not in READ_PATHS:
            raise ArgumentError(f"via={via!r}: unknown read path; one of {', '.join(READ_PATHS)}")
        if via == "auto":
            via = "pagetable" if self.needs_pagetables(addr) else "elf"
        out: Sink = sink if sink is not None else io.BytesIO()
        if via == "pagetable":
            report = self.reader(force_io=force_io, sparse=sparse).read(addr, size, out)
        elif via == "kcore":
            report = self._read_kcore(addr, size, out)
        else:
            from kcoretool.reader.sources import read_segments

            assert self.core is not None  # needs_pagetables() is True without one
            report = read_segments(self.core, addr, size, out)
        data = out.getvalue() if isinstance(out, io.BytesIO) and sink is None else None
        return data, report

    def needs_pagetables(self, addr: int) -> bool:
        """Whether ``via="auto"`` reads ``addr`` through the page tables
        (:func:`needs_pagetables`); always, without a core file."""
        return self.core is None or needs_pagetables(self.core, addr)

    def _read_kcore(self, addr: int, size: int, sink: Sink) -> ReadReport:
        from kcoretool.reader.vread import CHUNK

        core = self.core
        if core is None or core.kind != "kcore":
            raise KcoreToolError("via='kcore' reads through /proc/kcore: it needs the live kernel")
        report = ReadReport(addr, size, "kcore")
        for lo in range(addr, addr + size, CHUNK):
            n = min(CHUNK, addr + size - lo)
            sink.write(core.read(lo, n))
            report.add(PageRun(lo, n, "kcore"))
        return report

    @_translated
    def checker(self) -> KcoreChecker:
        """Compares areas through /proc/kcore and through the page tables
        (``checker().check(area)``); live only."""
        core = self.core
        if core is None or core.kind != "kcore" or not core.is_live:
            raise KcoreToolError("Kernel.checker() compares against the live kernel's /proc/kcore; "
                                 f"run it as root on the machine itself (core_path={LIVE!r})")
        return KcoreChecker(self.reader(), core.read)


def needs_pagetables(core: Core, addr: int) -> bool:
    """Whether ``read --via auto`` reads ``addr`` through the page tables
    rather than ``core``'s segments (see :func:`kcoretool.reader.sources.needs_pagetables`)."""
    from kcoretool.reader.sources import needs_pagetables as _needs

    return _needs(core, addr)


def debuginfo_plan(core: Core, mode: str = "auto", vmlinux: Optional[str] = None) -> DebugInfoPlan:
    """Which types and symbols :func:`open_kernel` would use for ``core``,
    and why -- decided from files and VMCOREINFO, without drgn."""
    return plan_debuginfo(mode, core.release, vmlinux, core.is_live, core.vmcoreinfo)


@_translated
def open_kernel(core_path: Optional[str] = None, vmlinux: Optional[str] = None, *,
                debuginfo: str = "auto", core: Optional[Core] = None) -> Kernel:
    """Open the running kernel (``core_path`` None or ``/proc/kcore``) or a
    vmcore, with its types and symbols: DWARF from ``vmlinux`` or the
    standard places, else (``debuginfo="auto"``) the kernel's BTF and
    kallsyms; ``debuginfo="dwarf"`` or ``"btf"`` forces one.  ``core`` is
    the same file already opened with :func:`open_core`."""
    from kcoretool.kernel.program import open_program

    path = core_path or LIVE
    if core is None:
        core = open_core(path)  # one clear line for anything that is not a core
    prog = open_program(path, vmlinux, debuginfo=debuginfo)
    return Kernel(prog, core)


def is_snapshot_file(path: str) -> bool:
    """Whether ``path`` names a snapshot file rather than a core."""
    from kcoretool.model.snapshot import is_snapshot_file as _is

    return _is(path)


def caller_totals(model: VmallocModel, kinds: Optional[Iterable[str]] = None,
                  caller: Optional[str] = None) -> Dict[Tuple[str, str], List[int]]:
    """``{(caller, kind): [areas, pages, bytes]}`` of a model's busy areas
    (see :func:`kcoretool.model.diff.caller_totals`)."""
    from kcoretool.model.diff import caller_totals as _totals

    return _totals(model, kinds, caller)


@_translated
def load_snapshot(path: str) -> VmallocSnapshot:
    """A snapshot file (``kcoretool vmalloc snapshot -o``) read back into a
    :class:`kcoretool.model.snapshot.VmallocSnapshot`."""
    from kcoretool.model.snapshot import load_snapshot as _load

    return _load(path)


@_translated
def diff(a: Kernel | VmallocSnapshot, b: Kernel | VmallocSnapshot, **filters: Any) -> VmallocDiff:
    """Compare two states -- each a snapshot or a :class:`Kernel` (whose
    snapshot is taken now) -- into a :class:`kcoretool.model.diff.VmallocDiff`
    (:func:`kcoretool.model.diff.diff` also takes two models).
    ``kinds=``, ``caller=`` (glob) and ``min_delta=`` (bytes) filter."""
    from kcoretool.model.diff import diff as _diff
    from kcoretool.model.snapshot import VmallocSnapshot

    for name, arg in (("a", a), ("b", b)):
        if not isinstance(arg, (Kernel, VmallocSnapshot)):
            raise ArgumentError(f"{name}={type(arg).__name__}: diff() compares Kernels or VmallocSnapshots "
                                "(k.snapshot(), load_snapshot(path))")
    sa = a.snapshot() if isinstance(a, Kernel) else a
    sb = b.snapshot() if isinstance(b, Kernel) else b
    return _diff(sa, sb, **filters)


@_translated
def from_program(prog: drgn.Program) -> Kernel:
    """
    A :class:`Kernel` over a :class:`drgn.Program` you already have (a drgn
    session, a script)::

        >>> prog = drgn.Program(); prog.set_core_dump("vmcore")
        >>> k = kcoretool.from_program(prog)
        >>> k.debuginfo.kind
        'btf'

    A program without the kernel's types (no vmlinux loaded) gets the
    kernel's BTF and kallsyms, modules' symbols included, exactly as
    :func:`open_kernel` would load them; ``k.debuginfo`` and a log record
    on the ``kcoretool`` logger say so. A program with DWARF is used as
    it is. The same Kernel (and its cached models) is returned for the
    same program, ``from_program(k.prog) is k``; live, ``vmalloc(refresh=True)``
    reads the kernel again.

    :raises ArgumentError: ``prog`` is not a :class:`drgn.Program`.
    :raises CoreFormatError: the program is not a Linux kernel.
    :raises DebugInfoError: neither DWARF nor BTF can be had; the message
        says how to get either.
    """
    from kcoretool.kernel.program import adopt_program

    if not isinstance(prog, _drgn().Program):
        raise ArgumentError(f"prog={type(prog).__name__}: from_program() takes a drgn.Program")
    kernel = prog.cache.get("kcoretool_kernel")
    if isinstance(kernel, Kernel):
        return kernel
    adopt_program(prog)
    kernel = Kernel(prog)
    prog.cache["kcoretool_kernel"] = kernel
    return kernel


def _drgn() -> Any:
    import drgn

    return drgn

