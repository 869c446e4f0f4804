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

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from kcoretool.kernel.task import PF_KTHREAD, RawMm, RawTask, RawVma, TaskReader, dev_major_minor
from kcoretool.kernel.walk import DEFAULT_LIMIT, WalkLog

__all__ = (
    "Mm",
    "Task",
    "TaskList",
    "Vma",
    "VmaList",
    "VmaLock",
    "VM_FLAG_NAMES",
    "build_task_list",
    "build_vma_list",
    "vm_flag_names",
)

# include/linux/mm.h (same bits in 6.1 and 6.12; pkey bits 32-35)
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8
VM_MAYSHARE = 0x80
VM_FLAG_NAMES: Tuple[Tuple[int, str], ...] = (
    (0x1, "READ"), (0x2, "WRITE"), (0x4, "EXEC"), (0x8, "SHARED"), (0x10, "MAYREAD"),
    (0x20, "MAYWRITE"), (0x40, "MAYEXEC"), (0x80, "MAYSHARE"), (0x100, "GROWSDOWN"),
    (0x200, "UFFD_MISSING"), (0x400, "PFNMAP"), (0x1000, "UFFD_WP"), (0x2000, "LOCKED"),
    (0x4000, "IO"), (0x8000, "SEQ_READ"), (0x10000, "RAND_READ"), (0x20000, "DONTCOPY"),
    (0x40000, "DONTEXPAND"), (0x80000, "LOCKONFAULT"), (0x100000, "ACCOUNT"),
    (0x200000, "NORESERVE"), (0x400000, "HUGETLB"), (0x800000, "SYNC"), (0x1000000, "PAT"),
    (0x2000000, "WIPEONFORK"), (0x4000000, "DONTDUMP"), (0x8000000, "SOFTDIRTY"),
    (0x10000000, "MIXEDMAP"), (0x20000000, "HUGEPAGE"), (0x40000000, "NOHUGEPAGE"),
    (0x80000000, "MERGEABLE"),
)
#: vm_refcnt's "readers excluded" bit (VMA_LOCK_OFFSET, 6.15+)
VMA_LOCK_OFFSET = 0x40000000
RSS_NAMES = ("file", "anon", "swapents", "shmem")
#: the rwxs/p column by (READ|WRITE|EXEC) | 8 for MAYSHARE
_PERMS = tuple(("r" if i & 1 else "-") + ("w" if i & 2 else "-") + ("x" if i & 4 else "-") + ("s" if i & 8 else "p")
               for i in range(16))


def vm_flag_names(flags: int) -> List[str]:
    out = [name for bit, name in VM_FLAG_NAMES if flags & bit]
    rest = flags & ~sum(bit for bit, _ in VM_FLAG_NAMES)
    if rest:
        out.append(hex(rest))
    return out


@dataclass
class VmaLock:
    """A VMA's per-VMA lock state (6.4+)."""

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


@dataclass
class Vma:
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
        return vm_flag_names(self.flags)

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

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(perms=self.perms, flag_names=self.flag_names, size=self.size, kind=self.kind,
                 lock=dict(d["lock"], write_locked=self.lock.write_locked, detached=self.lock.detached,
                           state=self.lock.describe()))
        return d


@dataclass
class Mm:
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

    def to_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), rss_pages=self.rss_pages)


@dataclass
class Task:
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

    def object(self, prog: Any = None) -> Any:
        """The ``struct task_struct *`` (a :class:`drgn.Object` in ``prog``, default drgn's default program)."""
        from kcoretool.model.kobject import kernel_object

        return kernel_object(prog, "struct task_struct *", self.address, "task")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["kthread"] = self.kthread
        return d


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


# -- building ------------------------------------------------------------------


def _mm(r: TaskReader, raw: RawMm, deltas: Tuple[int, ...] = ()) -> Mm:
    rss = list(raw.rss)
    for i, d in enumerate(deltas[:4]):
        rss[i] += d
    return Mm(raw.address, raw.pgd, raw.map_count, raw.total_vm, raw.locked_vm, raw.data_vm, raw.exec_vm,
              raw.stack_vm, raw.start_brk, raw.brk, raw.start_stack,
              {n: max(0, v) for n, v in zip(RSS_NAMES, rss)}, raw.mm_lock_seq)


def build_task_list(r: TaskReader, threads: bool = False, with_mm: bool = True,
                    limit: int = DEFAULT_LIMIT) -> TaskList:
    """Every process (``for_each_process``), or every thread with ``threads``."""
    log = WalkLog()
    raws: List[Tuple[RawTask, int]] = []
    for leader in r.for_each_process(log, limit):
        lt = r.read_task(leader)
        if lt is None:
            log.warn(f"task_struct {leader:#x} is unreadable")
            continue
        group = [lt]
        nr = None if threads or lt.rss_delta else r.nr_threads(lt)
        tids = list(r.for_each_thread(lt, log, limit)) if nr is None else [leader] * nr
        if threads or lt.rss_delta:
            for t in tids:
                if t == leader:
                    continue
                rt = r.read_task(t)
                if rt is None:
                    log.warn(f"thread {t:#x} of {lt.pid} is unreadable")
                    continue
                group.append(rt)
        if threads:
            raws.extend((t, len(tids) or 1) for t in group)
        else:
            deltas = tuple(sum(t.rss_delta[i] for t in group) for i in range(4)) if lt.rss_delta else ()
            raws.append((lt._replace(rss_delta=deltas), len(tids) or 1))
    pids: Dict[int, Optional[int]] = {t.address: t.pid for t, _ in raws}
    mms: Dict[int, Mm] = {}
    tasks = []
    for rt, n in raws:
        mm = None
        if with_mm and rt.mm:
            mm = mms.get(rt.mm)
            if mm is None:
                raw_mm = r.read_mm(rt.mm)
                if raw_mm is None:
                    log.warn(f"task {rt.pid}: mm_struct {rt.mm:#x} is unreadable")
                else:
                    mm = mms[rt.mm] = _mm(r, raw_mm, rt.rss_delta)
        parent = pids.get(rt.real_parent)
        if parent is None and rt.real_parent:
            p = r.read_task(rt.real_parent)
            parent = pids[rt.real_parent] = p.pid if p is not None else None
        tasks.append(Task(rt.address, rt.pid, rt.tgid, rt.comm, rt.state, rt.flags, mm, parent, n))
    return TaskList(tasks, r.layout.label, log.summary())


def find_task(r: TaskReader, pid: int, limit: int = DEFAULT_LIMIT,
              log: Optional[WalkLog] = None) -> Optional[RawTask]:
    """The task with this pid (a thread id works too); ``log`` gets a
    message for each task or list that could not be read, so that None can
    say whether the pid may be among them."""
    if log is None:
        log = WalkLog()
    for leader in r.for_each_process(log, limit):
        lt = r.read_task(leader)
        if lt is None:
            log.warn(f"task_struct {leader:#x} is unreadable")
            continue
        if lt.pid == pid:
            return lt
        if lt.tgid != pid:
            for t in r.for_each_thread(lt, log, limit):
                if t != leader:
                    rt = r.read_task(t)
                    if rt is None:
                        log.warn(f"task_struct {t:#x} is unreadable")
                    elif rt.pid == pid:
                        return rt
    return None


def vma_name(r: TaskReader, raw: RawVma, mm: Optional[RawMm], root: Tuple[int, int],
             log: Optional[WalkLog] = None) -> Tuple[str, Optional[str], Optional[str], int, int]:
    """(maps name, anon name, file path, dev, ino): ``show_map_vma()`` /
    ``get_vma_name()``, first match wins."""
    lay = r.layout
    anon = r.anon_vma_name(raw.anon_name) if raw.anon_name else None
    if raw.file:
        path, dev, ino = r.file_info(raw.file, root)
        if lay.anon_shmem_name and anon is not None:
            return f"[anon_shmem:{anon}]", anon, path, dev, ino
        return path, anon, path, dev, ino
    if raw.ops:
        fn = r.ops_name_fn(raw.ops)
        if fn == "special_mapping_name":
            name = r.special_mapping_name(raw.private_data)
            if name:
                return name, anon, None, 0, 0
        elif fn == "gate_vma_name":
            return "[vsyscall]", anon, None, 0, 0
        elif fn is not None and log is not None:
            log.warn(f"VMA {raw.start:#x}: vm_ops->name is {fn}(), which kcoretool cannot evaluate")
    if not raw.mm:
        return "[vdso]", anon, None, 0, 0
    if mm is not None:
        if lay.heap_test == "strict":
            heap = raw.start < mm.brk and raw.end > mm.start_brk
        else:
            heap = raw.start <= mm.brk and raw.end >= mm.start_brk
        if heap:
            return "[heap]", anon, None, 0, 0
        if raw.start <= mm.start_stack <= raw.end:
            return "[stack]", anon, None, 0, 0
    if anon is not None:
        return f"[anon:{anon}]", anon, None, 0, 0
    return "", anon, None, 0, 0


def make_vma(r: TaskReader, raw: RawVma, mm: Optional[RawMm], root: Tuple[int, int],
             log: Optional[WalkLog] = None, gate: bool = False) -> Vma:
    name, anon, path, dev, ino = vma_name(r, raw, mm, root, log)
    lock = VmaLock(r.layout.vma_lock, raw.lock_seq, mm.mm_lock_seq if mm is not None else None,
                   raw.detached, raw.refcnt)
    foreign = bool(not gate and mm is not None and raw.mm and raw.mm != mm.address)
    return Vma(raw.address, raw.start, raw.end, raw.flags, raw.pgoff, raw.file, path, dev, ino, name, anon,
               bool(raw.anon_vma), lock, gate, foreign)


def build_vma_list(r: TaskReader, task: RawTask, limit: int = DEFAULT_LIMIT, gate: bool = True) -> VmaList:
    """The VMAs of ``task``'s mm, in address order, then the gate VMA the
    way /proc/PID/maps appends it."""
    log = WalkLog()
    raw_mm = r.read_mm(task.mm) if task.mm else None
    mm = _mm(r, raw_mm) if raw_mm is not None else None
    model_task = Task(task.address, task.pid, task.tgid, task.comm, task.state, task.flags, mm, None)
    if raw_mm is None:
        if task.mm:
            log.warn(f"task {task.pid}: mm_struct {task.mm:#x} is unreadable")
        return VmaList(model_task, [], r.layout.label, log.summary())
    what = f"pid {task.pid} mm {raw_mm.address:#x}"
    vmas: List[Vma] = []
    prev_end = 0
    for raw in r.vmas(raw_mm, log, what, limit):
        if raw.tree_range is not None and raw.tree_range != (raw.start, raw.end):
            log.warn(f"{what}: VMA {raw.address:#x} is [{raw.start:#x}-{raw.end:#x}] but the tree has it at "
                     f"[{raw.tree_range[0]:#x}-{raw.tree_range[1]:#x}]")
        if raw.start < prev_end:
            log.warn(f"{what}: VMA {raw.address:#x} at {raw.start:#x} overlaps the previous one")
        prev_end = max(prev_end, raw.end)
        v = make_vma(r, raw, raw_mm, task.fs_root, log)
        if v.foreign_mm:
            log.warn(f"{what}: VMA {raw.address:#x} belongs to mm {raw.mm:#x} (fork in progress or damage)")
        vmas.append(v)
    if gate:
        g = r.gate_vma(raw_mm)
        if g is not None:
            vmas.append(make_vma(r, g, raw_mm, task.fs_root, log, gate=True))
    return VmaList(model_task, vmas, r.layout.label, log.summary())
