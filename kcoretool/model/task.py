# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The task-memory model
---------------------

Plain dataclasses for tasks, their ``mm_struct`` and VMAs, built from the
raw readers of :mod:`kcoretool.kernel.task`.  A :class:`Vma` knows how
/proc/PID/maps prints it (:meth:`Vma.maps_line`, after
``show_vma_header_prefix()`` and ``show_map_vma()`` in
:linux:`fs/proc/task_mmu.c`) and what state its per-VMA lock is in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from kcoretool.kernel.task import PF_KTHREAD, NamedVma, RawMm, RawTask, TaskReader, dev_major_minor
from kcoretool.kernel.vmflags import VM_EXEC, VM_MAYSHARE, VM_READ, VM_WRITE, VMA_FLAG_NAMES, vm_flag_names
from kcoretool.kernel.walk import DEFAULT_LIMIT, WalkLog
from kcoretool.model.record import Column, Field, Record

__all__ = (
    "Mm",
    "Task",
    "TaskList",
    "Vma",
    "VmaList",
    "VmaLock",
    "build_task_list",
    "build_vma_list",
)

#: vm_refcnt's "readers excluded" bit (VMA_LOCK_OFFSET, 6.15+)
VMA_LOCK_OFFSET = 0x40000000
RSS_NAMES = ("file", "anon", "swapents", "shmem")
_PERM_FLAGS = frozenset(("READ", "WRITE", "EXEC", "MAYREAD", "MAYWRITE", "MAYEXEC"))
#: the rwxs/p column by (READ|WRITE|EXEC) | 8 for MAYSHARE
_PERMS = tuple(("r" if i & 1 else "-") + ("w" if i & 2 else "-") + ("x" if i & 4 else "-") + ("s" if i & 8 else "p")
               for i in range(16))


@dataclass(repr=False)
class VmaLock(Record):
    """A VMA's per-VMA lock state (6.4+)."""

    FIELDS = (
        Field("kind"),
        Field("vm_lock_seq", presence="6.4+"),
        Field("mm_lock_seq", presence="6.4+"),
        Field("detached_flag", presence="6.4-6.14"),
        Field("refcnt", presence="6.15+"),
        Field("write_locked", presence="6.4+"),
        Field("detached", presence="6.4+"),
        Field("state"),
    )

    #: "none" (no per-VMA lock in this kernel), "seq_detached" (6.4-6.14)
    #: or "refcnt" (6.15+)
    kind: str
    vm_lock_seq: Optional[int] = None
    mm_lock_seq: Optional[int] = None
    #: 6.4-6.14: the ``detached`` flag
    detached_flag: Optional[bool] = None
    #: 6.15+: ``vm_refcnt``
    refcnt: Optional[int] = None

    @property
    def write_locked(self) -> Optional[bool]:
        """``__is_vma_write_locked()``: vm_lock_seq equals the mm's."""
        if self.kind == "none" or self.vm_lock_seq is None or self.mm_lock_seq is None:
            return None
        return self.vm_lock_seq == self.mm_lock_seq

    @property
    def detached(self) -> Optional[bool]:
        if self.kind == "seq_detached":
            return self.detached_flag
        if self.kind == "refcnt" and self.refcnt is not None:
            return self.refcnt == 0 or self.refcnt == VMA_LOCK_OFFSET
        return None

    @property
    def readers(self) -> Optional[int]:
        """6.15+: read-lock holders (refcnt - 1 while attached, no writer)."""
        if self.kind != "refcnt" or self.refcnt is None:
            return None
        n = self.refcnt & (VMA_LOCK_OFFSET - 1)
        return max(0, n - 1)

    @property
    def state(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """The lock column: "-" where the kernel has no per-VMA lock."""
        if self.kind == "none":
            return "-"
        parts = []
        if self.detached:
            parts.append("detached")
        if self.write_locked:
            parts.append("write-locked")
        if self.kind == "refcnt" and self.refcnt is not None:
            if self.refcnt & VMA_LOCK_OFFSET:
                parts.append("readers-excluded")
            if self.readers:
                parts.append(f"read-locked({self.readers})")
            parts.append(f"refcnt={self.refcnt:#x}" if self.refcnt >= VMA_LOCK_OFFSET else f"refcnt={self.refcnt}")
        return ",".join(parts) if parts else "unlocked"


@dataclass(repr=False)
class Vma(Record):
    FIELDS = (
        Field("address", address=True),
        Field("start", address=True, column=Column(0, "START", "hex")),
        Field("end", address=True, column=Column(1, "END", "hex")),
        Field("flags", address=True),
        Field("pgoff"),
        Field("file", address=True),
        Field("path"),
        Field("dev"),
        Field("inode"),
        Field("name", column=Column(7, "NAME")),
        Field("anon_name", presence="5.17+ (anon_vma_name)"),
        Field("anon"),
        Field("lock"),
        Field("gate"),
        Field("foreign_mm"),
        Field("perms", column=Column(3, "PERM")),
        Field("flag_names"),
        Field("size", column=Column(2, "SIZE", "bytes")),
        Field("kind"),
        Field("offset", json=None, column=Column(4, "OFFSET", "hex")),
        Field("extra_flags", json=None, column=Column(5, "FLAGS", "words")),
        Field("lock_state", json=None, column=Column(6, "LOCK", view="lock")),
    )

    address: int  #: of the struct vm_area_struct
    start: int
    end: int
    flags: int
    #: ``vm_pgoff`` (pages); /proc/PID/maps prints it only for file VMAs
    pgoff: int
    file: int
    path: Optional[str]
    dev: int
    inode: int
    #: the maps name column: a path, [heap], [stack], [vdso], [anon:x], ...
    name: str
    anon_name: Optional[str]
    anon: bool  #: has an anon_vma
    lock: VmaLock
    #: the gate VMA (vsyscall page): not in the tree, appended like /proc does
    gate: bool = False
    #: this VMA's vm_mm is not the mm whose tree holds it (fork window, damage)
    foreign_mm: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def perms(self) -> str:
        f = self.flags
        return _PERMS[f & (VM_READ | VM_WRITE | VM_EXEC) | (8 if f & VM_MAYSHARE else 0)]

    @property
    def flag_names(self) -> List[str]:
        return list(vm_flag_names(self.flags, VMA_FLAG_NAMES))

    @property
    def extra_flags(self) -> List[str]:
        """The flags the perms column does not show."""
        return [f for f in self.flag_names if f not in _PERM_FLAGS]

    @property
    def offset(self) -> int:
        """The file offset /proc/PID/maps prints (0 for an anonymous VMA)."""
        return self.pgoff << 12 if self.file else 0

    @property
    def lock_state(self) -> str:
        return self.lock.describe()

    @property
    def kind(self) -> str:
        if self.gate:
            return "gate"
        if self.file:
            return "file"
        return "anon"

    def maps_line(self) -> str:
        """The line /proc/PID/maps prints (without the newline):
        show_vma_header_prefix() then, with a name, seq_pad() to column 72
        (seq_setwidth(m, 25 + 8*6 - 1)) and one more space."""
        f = self.flags
        perms = _PERMS[f & 7 | (8 if f & VM_MAYSHARE else 0)]
        if self.file:
            major, minor = dev_major_minor(self.dev)
            head = "%08x-%08x %s %08x %02x:%02x %d " % (self.start, self.end, perms, self.pgoff << 12,
                                                         major, minor, self.inode)
        else:
            head = "%08x-%08x %s 00000000 00:00 0 " % (self.start, self.end, perms)
        if not self.name:
            return head
        return head.ljust(72) + " " + self.name

    def object(self, prog: Any = None) -> Any:
        """The ``struct vm_area_struct *`` (a :class:`drgn.Object` in ``prog``, default drgn's default program)."""
        from kcoretool.model.kobject import kernel_object

        return kernel_object(prog, "struct vm_area_struct *", self.address, "VMA")


@dataclass(repr=False)
class Mm(Record):
    FIELDS = (
        Field("address", address=True),
        Field("pgd", address=True),
        Field("map_count"),
        Field("total_vm"),
        Field("locked_vm"),
        Field("data_vm"),
        Field("exec_vm"),
        Field("stack_vm"),
        Field("start_brk", address=True),
        Field("brk", address=True),
        Field("start_stack", address=True),
        Field("rss"),
        Field("mm_lock_seq", presence="6.4+"),
        Field("rss_pages"),
    )

    address: int
    pgd: int
    map_count: int
    total_vm: int
    locked_vm: int
    data_vm: int
    exec_vm: int
    stack_vm: int
    start_brk: int
    brk: int
    start_stack: int
    #: pages by type (MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES)
    rss: Dict[str, int]
    mm_lock_seq: Optional[int]

    @property
    def rss_pages(self) -> int:
        return self.rss["file"] + self.rss["anon"] + self.rss["shmem"]

    def object(self, prog: Any = None) -> Any:
        """The ``struct mm_struct *`` (a :class:`drgn.Object` in ``prog``, default drgn's default program)."""
        from kcoretool.model.kobject import kernel_object

        return kernel_object(prog, "struct mm_struct *", self.address, "mm")

@dataclass(repr=False)
class Task(Record):
    FIELDS = (
        Field("address", address=True, column=Column(7, "TASK", "hex", "right")),
        Field("pid", column=Column(0, "PID", "int", "right")),
        Field("tgid", column=Column(1, "TGID", "int", "right", view="threads")),
        Field("comm"),
        Field("state", column=Column(3, "ST")),
        Field("flags", address=True),
        # the mm's stored fields (task vmas --json has its rss_pages too)
        Field("mm", nested="fields"),
        Field("parent_pid", column=Column(2, "PPID", "int", "right")),
        Field("nr_threads", column=Column(1, "THR", "int", "right", view="processes")),
        Field("kthread"),
        Field("rss_bytes", json=None, column=Column(4, "RSS", "bytes", "right")),
        Field("vm_bytes", json=None, column=Column(5, "VM", "bytes", "right")),
        Field("nr_vmas", json=None, column=Column(6, "VMAS", "int", "right")),
        Field("ps_comm", json=None, column=Column(8, "COMM")),
    )

    address: int
    pid: int
    tgid: int
    comm: str
    state: str
    flags: int
    mm: Optional[Mm]
    parent_pid: Optional[int]
    #: threads in the group (the leader included), when listed by process
    nr_threads: int = 1

    @property
    def kthread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    @property
    def rss_bytes(self) -> Optional[int]:
        return self.mm.rss_pages * 4096 if self.mm else None

    @property
    def vm_bytes(self) -> Optional[int]:
        return self.mm.total_vm * 4096 if self.mm else None

    @property
    def nr_vmas(self) -> Optional[int]:
        return self.mm.map_count if self.mm else None

    @property
    def ps_comm(self) -> str:
        """The name ps shows: a kernel thread's in [brackets]."""
        return f"[{self.comm}]" if self.kthread else self.comm

    def object(self, prog: Any = None) -> Any:
        """The ``struct task_struct *`` (a :class:`drgn.Object` in ``prog``, default drgn's default program)."""
        from kcoretool.model.kobject import kernel_object

        return kernel_object(prog, "struct task_struct *", self.address, "task")


@dataclass
class TaskList:
    tasks: List[Task]
    layout: str
    warnings: List[str] = field(default_factory=list)

    def find(self, pid: Any) -> Optional[Task]:
        """The task with ``pid`` (an int-like or a ``struct task_struct *``), or None."""
        from kcoretool._args import as_pid

        pid = as_pid(pid)
        return next((t for t in self.tasks if t.pid == pid), None)

    @staticmethod
    def columns(threads: bool = False) -> List[Tuple[str, Column]]:
        """The table of ``task list`` (``threads``: one row per thread)."""
        return Task.columns("threads" if threads else "processes")


@dataclass
class VmaList:
    task: Task
    vmas: List[Vma]
    layout: str
    warnings: List[str] = field(default_factory=list)

    def find(self, addr: Any) -> Optional[Vma]:
        """The VMA containing ``addr`` (an int or drgn Object), or None."""
        import bisect

        from kcoretool._args import as_address

        addr = as_address(addr, "addr")
        i = bisect.bisect_right([v.start for v in self.vmas], addr) - 1
        if i >= 0 and addr < self.vmas[i].end:
            return self.vmas[i]
        return None

    def maps_text(self) -> str:
        return "".join(v.maps_line() + "\n" for v in self.vmas)

    @staticmethod
    def columns(lock: bool) -> List[Tuple[str, Column]]:
        """The table of ``task vmas`` (``lock``: the kernel has per-VMA locks)."""
        return Vma.columns("lock" if lock else "")


# -- building ------------------------------------------------------------------


def _mm(raw: RawMm, deltas: Tuple[int, ...] = ()) -> Mm:
    rss = list(raw.rss)
    for i, d in enumerate(deltas[:4]):
        rss[i] += d
    return Mm(raw.address, raw.pgd, raw.map_count, raw.total_vm, raw.locked_vm, raw.data_vm, raw.exec_vm,
              raw.stack_vm, raw.start_brk, raw.brk, raw.start_stack,
              {n: max(0, v) for n, v in zip(RSS_NAMES, rss)}, raw.mm_lock_seq)


def build_task_list(r: TaskReader, threads: bool = False, with_mm: bool = True,
                    limit: int = DEFAULT_LIMIT) -> TaskList:
    """Every process (``for_each_process``), or every thread with ``threads``,
    from the kernel layer's one walk (:meth:`TaskReader.tasks`)."""
    log = WalkLog()
    mms: Dict[int, Mm] = {}
    tasks = []
    for rec in r.tasks(log, threads, with_mm, limit):
        rt, mm = rec.task, None
        if rec.mm is not None:
            # one Mm per mm_struct: the threads of a process share it
            mm = mms.get(rec.mm.address)
            if mm is None:
                mm = mms[rec.mm.address] = _mm(rec.mm, rt.rss_delta)
        tasks.append(Task(rt.address, rt.pid, rt.tgid, rt.comm, rt.state, rt.flags, mm, rec.parent_pid,
                          rec.nr_threads))
    return TaskList(tasks, r.layout.label, log.summary())


def _vma(vma_lock: str, v: NamedVma, mm: Optional[RawMm]) -> Vma:
    raw, n = v.raw, v.name
    lock = VmaLock(vma_lock, raw.lock_seq, mm.mm_lock_seq if mm is not None else None, raw.detached, raw.refcnt)
    foreign = bool(not v.gate and mm is not None and raw.mm and raw.mm != mm.address)
    return Vma(raw.address, raw.start, raw.end, raw.flags, raw.pgoff, raw.file, n.path, n.dev, n.inode, n.name,
               n.anon_name, bool(raw.anon_vma), lock, v.gate, foreign)


def build_vma_list(r: TaskReader, task: RawTask, limit: int = DEFAULT_LIMIT, gate: bool = True) -> VmaList:
    """The VMAs of ``task``'s mm, in address order, then the gate VMA the
    way /proc/PID/maps appends it, from the kernel layer's one pass
    (:meth:`TaskReader.mm_vmas`)."""
    log = WalkLog()
    got = r.mm_vmas(task, log, limit, gate)
    mm = _mm(got.mm) if got.mm is not None else None
    model_task = Task(task.address, task.pid, task.tgid, task.comm, task.state, task.flags, mm, None)
    vmas = [_vma(r.layout.vma_lock, v, got.mm) for v in got.vmas]
    return VmaList(model_task, vmas, r.layout.label, log.summary())
