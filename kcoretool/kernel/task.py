# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Tasks, mm_structs and VMAs, raw
-------------------------------

Fast, bounded readers for a kernel's processes (:linux:`kernel/fork.c`,
``include/linux/sched/signal.h``), their ``mm_struct``\\ s and VMAs
(``include/linux/mm_types.h``).  Member offsets are resolved once from the
program's types (DWARF or BTF alike); each structure is then read with one
``prog.read`` and decoded by offset.  Results are plain named tuples; the
:mod:`kcoretool.model.task` layer names them.

VMAs come from the maple tree (6.1+, :mod:`kcoretool.kernel.maple`) or the
``vm_next`` list of older kernels, never from drgn's helpers; file paths are
rebuilt from the dentry chain the way ``d_path()`` (:linux:`fs/d_path.c`)
does, relative to the task's own root (what that task sees in
/proc/PID/maps).
"""

from __future__ import annotations

import bisect
import operator
import struct
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import drgn

from kcoretool.kernel.maple import MapleLayout, maple_layout, mt_for_each, mtree_load, mtree_range
from kcoretool.kernel.task_layout import TaskLayout, detect_task_layout
from kcoretool.kernel.walk import DEFAULT_LIMIT, WalkLog, is_kernel_pointer, list_walk
from kcoretool.x86_64 import KERNEL_HALF, VMEMMAP_START_L4

__all__ = (
    "MmGuard",
    "MmView",
    "MmVmas",
    "NamedVma",
    "RawMm",
    "RawTask",
    "RawVma",
    "TaskReader",
    "TaskRecord",
    "VmaName",
    "dev_major_minor",
    "task_state_letter",
    "user_constants",
)

_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")

PF_KTHREAD = 0x00200000
# include/linux/sched.h: TASK_REPORT bits and the letters of task_state_array[]
_TASK_REPORT = 0x7F
_TASK_IDLE = 0x402  # TASK_UNINTERRUPTIBLE | TASK_NOLOAD
_STATE_LETTERS = "RSDTtXZPI"
#: d_path() components before we give up (a real path has far fewer)
MAX_PATH_DEPTH = 4096
MINORBITS = 20


def task_state_letter(state: int, exit_state: int) -> str:
    """``task_state_to_char()``: the letter ps prints."""
    tsk = (state | exit_state) & _TASK_REPORT
    if state == _TASK_IDLE:
        return "I"
    return _STATE_LETTERS[tsk.bit_length()] if tsk.bit_length() < len(_STATE_LETTERS) else "?"


class RawTask(NamedTuple):
    address: int
    pid: int
    tgid: int
    comm: str
    state: str
    flags: int
    mm: int
    active_mm: int
    real_parent: int
    fs_root: Tuple[int, int]  #: (vfsmount *, dentry *) of task->fs->root, (0, 0) if none
    rss_delta: Tuple[int, ...]  #: unflushed per-thread RSS counts (<= 6.1), else ()
    signal: int = 0  #: struct signal_struct *


class RawMm(NamedTuple):
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
    rss: Tuple[int, int, int, int]  #: file, anon, swap entries, shmem (pages)
    mm_lock_seq: Optional[int]
    context_flags: int
    vdso: int
    mt: int  #: address of mm->mm_mt (0 before 6.1)


class RawVma(NamedTuple):
    address: int
    start: int
    end: int
    mm: int
    flags: int
    pgoff: int
    file: int
    ops: int
    private_data: int
    anon_name: int
    anon_vma: int
    lock_seq: Optional[int]
    detached: Optional[bool]
    refcnt: Optional[int]
    #: where the tree holding it says it lives (maple), None for lists
    tree_range: Optional[Tuple[int, int]] = None


class VmaName(NamedTuple):
    """What /proc/PID/maps names a VMA by (``show_map_vma()``)."""

    name: str  #: the maps name column: a path, [heap], [stack], [vdso], [anon:x], ...
    anon_name: Optional[str]
    path: Optional[str]
    dev: int
    inode: int


class NamedVma(NamedTuple):
    raw: RawVma
    name: VmaName
    #: the gate VMA (vsyscall page): not in the tree, appended like /proc does
    gate: bool = False


class MmVmas(NamedTuple):
    """A task's mm and its VMAs in address order, then the gate VMA: what
    /proc/PID/maps shows, read in one pass (:meth:`TaskReader.mm_vmas`)."""

    mm: Optional[RawMm]
    vmas: List[NamedVma]


class TaskRecord(NamedTuple):
    """One entry of :meth:`TaskReader.tasks`: a task, its mm, its parent's pid."""

    task: RawTask
    mm: Optional[RawMm]
    parent_pid: Optional[int]
    #: threads in the group (the leader included), when listed by process
    nr_threads: int


class MmGuard(NamedTuple):
    """What a lockless reader of an mm checks did not move between the start
    and the end of a read (a seqlock read section without the lock).

    ``ctx_id`` never repeats for another mm (x86: ``last_mm_ctx_id``);
    ``tlb_gen`` moves before any frame or page table the mm mapped can be
    freed; ``seq`` is ``mm_lock_seq`` (6.4+) or ``vmacache_seqnum`` (<= 6.0),
    None where the kernel has neither (6.1-6.3)."""

    ctx_id: Optional[int]
    tlb_gen: Optional[int]
    seq: Optional[int]


#: vm_refcnt's "readers excluded" bit: VMA_LOCK_OFFSET (6.15-6.18),
#: VM_REFCNT_EXCLUDE_READERS_FLAG (7.x); a reader's refcount_inc is limited
#: below it (VMA_REF_LIMIT / VM_REFCNT_LIMIT)
VM_REFCNT_EXCLUDE_READERS = 1 << 30


def _offsets(t: drgn.Type, names: List[str]) -> Dict[str, int]:
    out = {}
    for n in names:
        try:
            out[n] = drgn.offsetof(t, n)
        except (LookupError, ValueError, TypeError):
            pass
    return out


class TaskReader:
    """Raw reads of tasks, mms and VMAs of one program."""

    def __init__(self, prog: drgn.Program, layout: Optional[TaskLayout] = None) -> None:
        self.prog = prog
        self.layout = layout = layout or detect_task_layout(prog)
        tt = prog.type("struct task_struct")
        self._t = _offsets(tt, ["tasks", "pid", "tgid", "comm", layout.task_state, "exit_state", "flags",
                                "mm", "active_mm", "real_parent", "signal", "thread_node", "fs",
                                "rss_stat.count"])
        self._t_lo = min(self._t.values())
        self._t_size = max(self._t.values()) + 24 - self._t_lo
        self._comm_len = tt.member("comm").type.length or 16
        st = prog.type("struct signal_struct")
        self._thread_head = drgn.offsetof(st, "thread_head")
        self._nr_threads = drgn.offsetof(st, "nr_threads") if st.has_member("nr_threads") else None
        self._roots: Dict[int, Tuple[int, int]] = {}
        self._t_unpack = self._task_decoder()
        fs = prog.type("struct fs_struct")
        self._fs_root = drgn.offsetof(fs, "root")
        mt = prog.type("struct mm_struct")
        names = ["pgd", "map_count", "total_vm", "locked_vm", "data_vm", "exec_vm", "stack_vm",
                 "start_brk", "brk", "start_stack", "rss_stat", "context.flags", "context.vdso"]
        if layout.vma_index == "maple":
            names.append("mm_mt")
        else:
            names += ["mmap", "mm_rb"]
        if layout.mm_lock_seq == "seqcount":
            names.append("mm_lock_seq.sequence")
        elif layout.mm_lock_seq == "int":
            names.append("mm_lock_seq")
        self._m = _offsets(mt, names)
        self._m_size = max(self._m.values()) + 64
        # What mm_guard() reads, decided once (see TaskLayout.tlb_gen,
        # .mm_lock_seq, .vmacache_seq for the commits).
        g = _offsets(mt, ["context.ctx_id", "context.tlb_gen", "mm_lock_seq.sequence", "mm_lock_seq",
                          "vmacache_seqnum"])
        self._guard: List[Tuple[int, struct.Struct]] = []
        self._guard_seqcount = layout.mm_lock_seq == "seqcount"
        if layout.tlb_gen:
            self._guard += [(g["context.ctx_id"], _U64), (g["context.tlb_gen"], _U64)]
        if layout.mm_lock_seq == "seqcount":
            self._guard.append((g["mm_lock_seq.sequence"], _U32))
        elif layout.mm_lock_seq == "int":
            self._guard.append((g["mm_lock_seq"], _I32))
        elif layout.vmacache_seq:
            self._guard.append((g["vmacache_seqnum"], _U64))
        self._guard_has_seq = len(self._guard) > (2 if layout.tlb_gen else 0)
        if layout.rss == "percpu":
            pc = prog.type("struct percpu_counter")
            self._pc_size = drgn.sizeof(pc)
            self._pc_count = drgn.offsetof(pc, "count")
            self._pc_counters = drgn.offsetof(pc, "counters")
        vt = prog.type("struct vm_area_struct")
        vnames = ["vm_start", "vm_end", "vm_mm", "vm_flags", "vm_pgoff", "vm_file", "vm_ops",
                  "vm_private_data", "anon_vma", "anon_name", "vm_lock_seq", "detached",
                  "vm_refcnt", "vm_next", "vm_rb"]
        self._v = _offsets(vt, vnames)
        self._v_size = drgn.sizeof(vt)
        self._v_unpack = self._vma_decoder(vt)
        self._maple: Optional[MapleLayout] = maple_layout(prog) if layout.vma_index == "maple" else None
        self._paths: Dict[Tuple[int, Tuple[int, int]], Tuple[str, int, int]] = {}
        self._ops_names: Dict[int, Optional[str]] = {}
        self._percpu_offsets: Optional[List[int]] = None
        self._file: Optional[Dict[str, int]] = None

    def _task_decoder(self) -> Callable[[bytes], Tuple[Any, ...]]:
        o, lo = self._t, self._t_lo
        fields = [(self.layout.task_state, "I"), ("flags", "I"), ("mm", "Q"), ("active_mm", "Q"),
                  ("exit_state", "i"), ("pid", "i"), ("tgid", "i"), ("real_parent", "Q"),
                  ("comm", f"{self._comm_len}s"), ("fs", "Q"), ("signal", "Q")]
        if "rss_stat.count" in o:
            fields.append(("rss_stat.count", "4i"))
        placed = sorted(((o[n] - lo, n, c) for n, c in fields), key=lambda f: f[0])
        fmt, pos = "<", 0
        for off, _, code in placed:
            if off > pos:
                fmt += f"{off - pos}x"
            elif off < pos:
                raise ValueError("overlapping task_struct members")
            fmt += code
            pos = off + struct.calcsize("<" + code)
        st = struct.Struct(fmt)
        # Struct yields values in offset order; hand them back in field order
        # (the 4 RSS counts, when present, stay last).
        flat: List[str] = []
        for _, n, c in placed:
            flat += [n] * (4 if c == "4i" else 1)
        order = []
        for n, _ in fields:
            order += [i for i, m in enumerate(flat) if m == n]
        getter = operator.itemgetter(*order)
        unpack_from = st.unpack_from

        def unpack(buf: bytes) -> Tuple[Any, ...]:
            return getter(unpack_from(buf))

        return unpack

    def _vma_decoder(self, vt: drgn.Type) -> Callable[[bytes], Tuple[Any, ...]]:
        """One precompiled Struct for every VMA member read (absent ones
        decode as None)."""
        lay = self.layout
        o = self._v
        seq_code = "I" if lay.mm_lock_seq == "seqcount" else "i"
        wanted = [("vm_start", "Q"), ("vm_end", "Q"), ("vm_mm", "Q"), ("vm_flags", "Q"), ("vm_pgoff", "Q"),
                  ("vm_file", "Q"), ("vm_ops", "Q"), ("vm_private_data", "Q"), ("anon_vma", "Q"),
                  ("anon_name", "Q"), ("vm_lock_seq", seq_code),
                  ("detached", "B" if lay.vma_lock == "seq_detached" else ""),
                  ("vm_refcnt", "I" if lay.vma_lock == "refcnt" else "")]
        present = [(n, o[n], c) for n, c in wanted if c and n in o]
        fmt, pos = "<", 0
        for _, off, code in sorted(present, key=lambda f: f[1]):
            if off > pos:
                fmt += f"{off - pos}x"
            fmt += code
            pos = off + struct.calcsize("<" + code)
        order = [n for n, _, _ in sorted(present, key=lambda f: f[1])]
        st = struct.Struct(fmt)
        idx = [order.index(n) if n in order else None for n, _ in wanted]
        zero_default = {i for i, (n, _) in enumerate(wanted) if n in ("anon_name", "vm_file", "vm_ops",
                                                                       "vm_private_data", "anon_vma")}
        # absent members read from two sentinels appended to the values: 0, None
        n = len(order)
        getter = operator.itemgetter(*(i if i is not None else (n if k in zero_default else n + 1)
                                       for k, i in enumerate(idx)))
        unpack_from = st.unpack_from

        def unpack(buf: bytes) -> Tuple[Any, ...]:
            return getter(unpack_from(buf) + (0, None))

        return unpack

    # -- tasks -------------------------------------------------------------

    def init_task(self) -> int:
        return int(self.prog["init_task"].address_)

    def for_each_process(self, log: WalkLog, limit: int = DEFAULT_LIMIT) -> Iterator[int]:
        """Thread-group leaders on ``init_task.tasks`` (``for_each_process``)."""
        off = self._t["tasks"]
        for addr, _ in list_walk(self.prog, self.init_task() + off, off, off + 8, log, "init_task.tasks", limit):
            yield addr

    def for_each_thread(self, leader_buf: RawTask, log: WalkLog, limit: int = DEFAULT_LIMIT) -> Iterator[int]:
        """Every thread of a process, from ``signal->thread_head``."""
        try:
            signal = self.prog.read_u64(leader_buf.address + self._t["signal"])
        except drgn.FaultError:
            log.warn(f"task {leader_buf.pid}: signal_struct pointer unreadable")
            yield leader_buf.address
            return
        if not is_kernel_pointer(signal):
            yield leader_buf.address
            return
        off = self._t["thread_node"]
        for addr, _ in list_walk(self.prog, signal + self._thread_head, off, off + 8, log,
                                 f"task {leader_buf.pid} signal->thread_head", limit):
            yield addr

    def read_task(self, addr: int) -> Optional[RawTask]:
        try:
            buf = self.prog.read(addr + self._t_lo, self._t_size)
        except drgn.FaultError:
            return None
        (state, flags, mm, active_mm, exit_state, pid, tgid, parent, comm, fs, signal,
         *rss) = self._t_unpack(buf)
        comm = comm.split(b"\0", 1)[0].decode("utf-8", "replace")
        root = (0, 0)
        if fs >= KERNEL_HALF:
            root = self._roots.get(fs) or self._fs_root_of(fs)
        return RawTask(addr, pid, tgid, comm, task_state_letter(state, exit_state & 0xFFFFFFFF), flags, mm,
                       active_mm, parent, root, tuple(rss), signal)

    def tasks(self, log: WalkLog, threads: bool = False, with_mm: bool = True,
              limit: int = DEFAULT_LIMIT) -> List[TaskRecord]:
        """Every process (``for_each_process``), or every thread with
        ``threads``, each with its mm (one read per mm) and its parent's
        pid; a process's unflushed per-thread RSS counts (<= 6.1) summed
        into its leader's ``rss_delta``."""
        raws: List[Tuple[RawTask, int]] = []
        for leader in self.for_each_process(log, limit):
            lt = self.read_task(leader)
            if lt is None:
                log.warn(f"task_struct {leader:#x} is unreadable")
                continue
            group = [lt]
            nr = None if threads or lt.rss_delta else self.nr_threads(lt)
            tids = list(self.for_each_thread(lt, log, limit)) if nr is None else [leader] * nr
            if threads or lt.rss_delta:
                for t in tids:
                    if t == leader:
                        continue
                    rt = self.read_task(t)
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
        mms: Dict[int, RawMm] = {}
        out = []
        for rt, n in raws:
            mm = None
            if with_mm and rt.mm:
                mm = mms.get(rt.mm)
                if mm is None:
                    mm = self.read_mm(rt.mm)
                    if mm is None:
                        log.warn(f"task {rt.pid}: mm_struct {rt.mm:#x} is unreadable")
                    else:
                        mms[rt.mm] = mm
            parent = pids.get(rt.real_parent)
            if parent is None and rt.real_parent:
                p = self.read_task(rt.real_parent)
                parent = pids[rt.real_parent] = p.pid if p is not None else None
            out.append(TaskRecord(rt, mm, parent, n))
        return out

    def find_task(self, pid: int, log: WalkLog, limit: int = DEFAULT_LIMIT) -> Optional[RawTask]:
        """The task with this pid (a thread id works too); ``log`` gets a
        message for each task or list that could not be read, so that None can
        say whether the pid may be among them."""
        for leader in self.for_each_process(log, limit):
            lt = self.read_task(leader)
            if lt is None:
                log.warn(f"task_struct {leader:#x} is unreadable")
                continue
            if lt.pid == pid:
                return lt
            if lt.tgid != pid:
                for t in self.for_each_thread(lt, log, limit):
                    if t != leader:
                        rt = self.read_task(t)
                        if rt is None:
                            log.warn(f"task_struct {t:#x} is unreadable")
                        elif rt.pid == pid:
                            return rt
        return None

    def _fs_root_of(self, fs: int) -> Tuple[int, int]:
        try:
            rb = self.prog.read(fs + self._fs_root, 16)
        except drgn.FaultError:
            return (0, 0)
        root = (_U64.unpack_from(rb, 0)[0], _U64.unpack_from(rb, 8)[0])
        if len(self._roots) < 4096:
            self._roots[fs] = root
        return root

    def nr_threads(self, task: RawTask) -> Optional[int]:
        """``signal->nr_threads``."""
        if self._nr_threads is None or not task.signal >= KERNEL_HALF:
            return None
        try:
            return int(_I32.unpack(self.prog.read(task.signal + self._nr_threads, 4))[0])
        except drgn.FaultError:
            return None

    # -- mm ------------------------------------------------------------------

    def read_mm(self, addr: int) -> Optional[RawMm]:
        try:
            buf = self.prog.read(addr, self._m_size)
        except drgn.FaultError:
            return None
        o = self._m

        def u64(name: str) -> int:
            return _U64.unpack_from(buf, o[name])[0] if name in o else 0

        seq: Optional[int] = None
        if "mm_lock_seq.sequence" in o:
            seq = _U32.unpack_from(buf, o["mm_lock_seq.sequence"])[0]
        elif "mm_lock_seq" in o:
            seq = _I32.unpack_from(buf, o["mm_lock_seq"])[0]
        return RawMm(
            addr, u64("pgd"), _I32.unpack_from(buf, o["map_count"])[0], u64("total_vm"), u64("locked_vm"),
            u64("data_vm"), u64("exec_vm"), u64("stack_vm"), u64("start_brk"), u64("brk"),
            u64("start_stack"), self._rss(addr, buf), seq,
            struct.unpack_from("<H", buf, o["context.flags"])[0] if "context.flags" in o else 0,
            u64("context.vdso"), addr + o["mm_mt"] if "mm_mt" in o else 0,
        )

    def _rss(self, addr: int, buf: bytes) -> Tuple[int, int, int, int]:
        off = self._m.get("rss_stat")
        if off is None:
            return (0, 0, 0, 0)
        if self.layout.rss == "atomic":
            return struct.unpack_from("<4q", buf, off)
        # percpu_counter_sum(): count + each possible CPU's delta
        out = []
        for i in range(4):
            base = off + i * self._pc_size
            total = struct.unpack_from("<q", buf, base + self._pc_count)[0]
            counters = _U64.unpack_from(buf, base + self._pc_counters)[0]
            if counters:
                for cpu_off in self._cpu_offsets():
                    try:
                        total += _I32.unpack(self.prog.read((counters + cpu_off) & (2**64 - 1), 4))[0]
                    except drgn.FaultError:
                        pass
            out.append(total)
        return tuple(out)

    def _cpu_offsets(self) -> List[int]:
        if self._percpu_offsets is None:
            from drgn.helpers.linux.cpumask import for_each_possible_cpu

            try:
                table = self.prog["__per_cpu_offset"]
                self._percpu_offsets = [int(table[c]) for c in for_each_possible_cpu(self.prog)]
            except (KeyError, LookupError, drgn.FaultError):
                self._percpu_offsets = []
        return self._percpu_offsets

    # -- lockless validation (live) -------------------------------------------

    def mm_guard(self, mm: int) -> Optional[MmGuard]:
        """The mm's :class:`MmGuard` now, or None when a lockless read must
        not start: unreadable, or (6.14+) ``mm_lock_seq`` odd -- mmap_lock is
        write-held, and ``mmap_lock_speculate_try_begin()`` fails the same way
        (eb449bd96954 "mm: convert mm_lock_seq to a proper seqcount", v6.14).
        The sequence count is read first and the TLB generation last, as a
        seqlock reader reads its count before the data."""
        vals: List[int] = []
        try:
            for off, st in reversed(self._guard):
                vals.append(st.unpack(self.prog.read(mm + off, st.size))[0])
        except drgn.FaultError:
            return None
        vals.reverse()
        tlb = vals[:2] if self.layout.tlb_gen else [None, None]
        seq = vals[-1] if self._guard_has_seq else None
        if seq is not None and self._guard_seqcount and seq & 1:
            return None
        return MmGuard(tlb[0], tlb[1], seq)

    def vma_unusable(self, v: RawVma, mm: int, guard: MmGuard) -> Optional[str]:
        """Why a lockless reader must not take ``v`` as the VMA of its
        addresses (None: it may), after the kernel's own lockless lookup,
        ``lock_vma_under_rcu()`` and ``vma_start_read()``:

        - ``vm_mm`` is not this mm: a VMA freed and reused by another mm
          (SLAB_TYPESAFE_BY_RCU from "mm: make vma cache
          SLAB_TYPESAFE_BY_RCU", after v6.14), or 6.9+ fork's ``__mt_dup()``
          window, where the child's tree still holds the parent's VMAs;
        - detached: ``vms_gather_munmap_vmas()`` marks the VMAs it removes
          (``detached``, "mm: introduce vma detached flag", v6.4) or drops
          ``vm_refcnt`` to 0 ("mm: replace vm_lock and detached flag with a
          reference count", after v6.14) before it clears the tree;
        - readers excluded (``vm_refcnt`` with the exclude bit): a writer or
          detacher waits for readers to leave (``__vma_enter_locked()``);
        - write-locked: ``vm_lock_seq == mm_lock_seq``: an mmap_lock writer
          is changing it (``vma_start_write()``), and it stays so until
          ``vma_end_write_all()`` moves mm_lock_seq -- e.g. 6.12+'s
          ``__mmap_region()`` stores a new VMA over a range whose old PTEs
          ``vms_complete_munmap_vmas()`` zaps only afterwards.
        """
        if v.mm != mm:
            return "vm_mm is another mm"
        lay = self.layout.vma_lock
        if lay == "seq_detached" and v.detached:
            return "detached"
        if lay == "refcnt" and v.refcnt is not None:
            if v.refcnt == 0:
                return "detached"
            if v.refcnt & VM_REFCNT_EXCLUDE_READERS:
                return "readers excluded"
        if lay != "none" and guard.seq is not None and v.lock_seq is not None:
            if v.lock_seq & 0xFFFFFFFF == guard.seq & 0xFFFFFFFF:
                return "write-locked"
        return None

    def vma_lookup(self, mm: RawMm, addr: int) -> Optional[Tuple[Optional[RawVma], int, int]]:
        """``(vma or None, start, end)``: the VMA covering ``addr`` by a fresh
        lookup (``mas_walk()`` on the maple tree; before 6.1 ``find_vma()``'s
        descent of ``mm_rb``) and the range it covers -- for None, the gap ``addr`` lies in.
        None when the lookup itself met a changing structure (a dead or
        inconsistent maple node, a VMA that does not cover ``addr``)."""
        if self.layout.vma_index == "maple":
            got = mtree_range(self.prog, mm.mt, addr, self._maple)
            if got is None:
                return None
            entry, first, last = got
            if entry is None:
                return None, first, min(last + 1, 1 << 64)
            if not is_kernel_pointer(entry):
                return None
            v = self.read_vma(entry)
            # lock_vma_under_rcu(): vm_start/vm_end may change before the lock
            if v is None or not v.start <= addr < v.end:
                return None
            return v._replace(tree_range=(first, last + 1)), v.start, v.end
        return self._rb_lookup(mm, addr)

    def _rb_lookup(self, mm: RawMm, addr: int) -> Optional[Tuple[Optional[RawVma], int, int]]:
        """<= 6.0: ``find_vma()``'s descent of ``mm->mm_rb`` (the first VMA
        ending above ``addr``; the last one passed on the right ends the gap
        below it); the ``vm_next`` list if the tree is empty."""
        rb = self._v.get("vm_rb")
        if rb is None or "mm_rb" not in self._m:
            return self._list_lookup(mm, addr)
        try:
            node = self.prog.read_u64(mm.address + self._m["mm_rb"])
        except drgn.FaultError:
            return None
        if not node:
            return self._list_lookup(mm, addr)
        found: Optional[RawVma] = None
        prev_end = 0
        for _ in range(128):  # an rbtree of 2^64 nodes is 128 deep at most
            if not node:
                break
            if not is_kernel_pointer(node):
                return None
            v = self.read_vma(node - rb)
            try:
                links = self.prog.read(node + 8, 16)  # rb_right, rb_left
            except drgn.FaultError:
                return None
            if v is None:
                return None
            right, left = struct.unpack("<QQ", links)
            if v.end > addr:
                found = v
                if v.start <= addr:
                    return v, v.start, v.end
                node = left
            else:
                prev_end = max(prev_end, v.end)
                node = right
        else:
            return None  # deeper than any tree: a cycle under the walk
        if found is None:
            return None, prev_end, 1 << 64
        return None, prev_end, found.start

    def _list_lookup(self, mm: RawMm, addr: int) -> Optional[Tuple[Optional[RawVma], int, int]]:
        log = WalkLog()
        prev_end = 0
        try:
            for v in self.vmas(mm, log, "vma_lookup", 1 << 20):
                if v.end > addr:
                    if v.start <= addr:
                        return v, v.start, v.end
                    return None, prev_end, v.start
                prev_end = v.end
        except drgn.FaultError:
            return None  # a vm_next read from a VMA freed under the walk
        if log.summary():
            return None
        return None, prev_end, 1 << 64

    # -- VMAs ------------------------------------------------------------------

    def read_vma(self, addr: int, tree_range: Optional[Tuple[int, int]] = None,
                 pages: Optional[Dict[int, bytes]] = None) -> Optional[RawVma]:
        """One VMA.  ``pages``: a walk's cache of whole pages -- VMAs come
        from slab pages holding a score of them, so one read serves many."""
        try:
            off = addr & 0xFFF
            if pages is not None and off + self._v_size <= 0x1000:
                page = pages.get(addr - off)
                if page is None:
                    page = pages[addr - off] = self.prog.read(addr - off, 0x1000)
                buf = page[off:off + self._v_size]
            else:
                buf = self.prog.read(addr, self._v_size)
        except drgn.FaultError:
            try:
                buf = self.prog.read(addr, self._v_size)
            except drgn.FaultError:
                return None
        (start, end, mm, flags, pgoff, file, ops, priv, anon_vma, anon, lock_seq, detached,
         refcnt) = self._v_unpack(buf)
        if anon and file and self.layout.anon_name == "union":
            anon = 0  # the union holds the i_mmap tree node then
        return RawVma(addr, start, end, mm, flags, pgoff, file, ops, priv, anon, anon_vma, lock_seq,
                      None if detached is None else bool(detached), refcnt, tree_range)

    def vmas(self, mm: RawMm, log: WalkLog, what: str, limit: int = DEFAULT_LIMIT) -> Iterator[RawVma]:
        """The mm's VMAs in address order; damaged entries are logged."""
        if self.layout.vma_index == "maple":
            pages: Dict[int, bytes] = {}
            for first, last, entry in mt_for_each(self.prog, mm.mt, log, what, self._maple, limit):
                if not is_kernel_pointer(entry):
                    log.warn(f"{what}: [{first:#x}-{last:#x}] holds {entry:#x}, not a VMA pointer")
                    continue
                if len(pages) > 4096:
                    pages.clear()
                v = self.read_vma(entry, (first, last + 1), pages)
                if v is None:
                    log.warn(f"{what}: VMA {entry:#x} for [{first:#x}-{last:#x}] is unreadable")
                    continue
                yield v
            return
        # <= 6.0: mm->mmap, a NULL-terminated vm_next list in address order
        try:
            node = self.prog.read_u64(mm.address + self._m["mmap"])
        except drgn.FaultError:
            log.warn(f"{what}: mm->mmap unreadable")
            return
        seen: Set[int] = set()
        prev_end = 0
        while node:
            if not is_kernel_pointer(node) or node in seen or len(seen) >= limit:
                log.warn(f"{what}: vm_next list stops at {node:#x} (invalid, cycle or limit) "
                         f"after {len(seen)} VMAs")
                return
            seen.add(node)
            v = self.read_vma(node)
            if v is None:
                log.warn(f"{what}: VMA {node:#x} is unreadable")
                return
            if v.start < prev_end or v.end <= v.start:
                log.warn(f"{what}: VMA {node:#x} [{v.start:#x}-{v.end:#x}] out of order; list stops")
                return
            prev_end = v.end
            yield v
            node = self.prog.read_u64(node + self._v["vm_next"])

    def vma_at(self, mm: RawMm, addr: int) -> Optional[RawVma]:
        """``vma_lookup()``: the VMA containing ``addr``."""
        if self.layout.vma_index == "maple":
            entry = mtree_load(self.prog, mm.mt, addr, self._maple)
            if not entry or not is_kernel_pointer(entry):
                return None
            v = self.read_vma(entry)
            return v if v is not None and v.start <= addr < v.end else None
        log = WalkLog()
        for v in self.vmas(mm, log, "vma_at", 1 << 20):
            if v.start <= addr < v.end:
                return v
            if v.start > addr:
                break
        return None

    def gate_vma(self, mm: RawMm) -> Optional[RawVma]:
        """``get_gate_vma()`` (arch/x86/entry/vsyscall/vsyscall_64.c): the
        vsyscall page, listed after the last VMA unless vsyscall=none, and
        with CONFIG_COMPAT only for mms with MM_CONTEXT_HAS_VSYSCALL."""
        addr = _symbol_address(self.prog, "gate_vma")
        mode_addr = _symbol_address(self.prog, "vsyscall_mode")
        if addr is None or mode_addr is None:
            return None
        try:
            mode = self.prog.read_u32(mode_addr)
        except drgn.FaultError:
            return None
        if mode == 2:  # NONE
            return None
        # MM_CONTEXT_HAS_VSYSCALL is bit 1 of mm->context.flags with CONFIG_COMPAT;
        # without it the flag never exists and the gate is always there.
        if _symbol_address(self.prog, "compat_sys_call_table") is not None and not mm.context_flags & 2:
            return None
        return self.read_vma(addr)

    def mm_vmas(self, task: RawTask, log: WalkLog, limit: int = DEFAULT_LIMIT, gate: bool = True) -> MmVmas:
        """``task``'s mm and its VMAs with their names, in address order, then
        the gate VMA the way /proc/PID/maps appends it; what does not add up
        (a VMA where the tree does not put it, overlaps, another mm's VMA)
        is logged."""
        mm = self.read_mm(task.mm) if task.mm else None
        if mm is None:
            if task.mm:
                log.warn(f"task {task.pid}: mm_struct {task.mm:#x} is unreadable")
            return MmVmas(None, [])
        what = f"pid {task.pid} mm {mm.address:#x}"
        vmas: List[NamedVma] = []
        prev_end = 0
        for raw in self.vmas(mm, log, what, limit):
            if raw.tree_range is not None and raw.tree_range != (raw.start, raw.end):
                log.warn(f"{what}: VMA {raw.address:#x} is [{raw.start:#x}-{raw.end:#x}] but the tree has it at "
                         f"[{raw.tree_range[0]:#x}-{raw.tree_range[1]:#x}]")
            if raw.start < prev_end:
                log.warn(f"{what}: VMA {raw.address:#x} at {raw.start:#x} overlaps the previous one")
            prev_end = max(prev_end, raw.end)
            vmas.append(NamedVma(raw, self.vma_name(raw, mm, task.fs_root, log)))
            if raw.mm and raw.mm != mm.address:
                log.warn(f"{what}: VMA {raw.address:#x} belongs to mm {raw.mm:#x} (fork in progress or damage)")
        if gate:
            g = self.gate_vma(mm)
            if g is not None:
                vmas.append(NamedVma(g, self.vma_name(g, mm, task.fs_root, log), gate=True))
        return MmVmas(mm, vmas)

    def vma_name(self, raw: RawVma, mm: Optional[RawMm], root: Tuple[int, int],
                 log: Optional[WalkLog] = None) -> VmaName:
        """``show_map_vma()`` / ``get_vma_name()``, first match wins."""
        lay = self.layout
        anon = self.anon_vma_name(raw.anon_name) if raw.anon_name else None
        if raw.file:
            path, dev, ino = self.file_info(raw.file, root)
            if lay.anon_shmem_name and anon is not None:
                return VmaName(f"[anon_shmem:{anon}]", anon, path, dev, ino)
            return VmaName(path, anon, path, dev, ino)
        if raw.ops:
            fn = self.ops_name_fn(raw.ops)
            if fn == "special_mapping_name":
                name = self.special_mapping_name(raw.private_data)
                if name:
                    return VmaName(name, anon, None, 0, 0)
            elif fn == "gate_vma_name":
                return VmaName("[vsyscall]", anon, None, 0, 0)
            elif fn is not None and log is not None:
                log.warn(f"VMA {raw.start:#x}: vm_ops->name is {fn}(), which kcoretool cannot evaluate")
        if not raw.mm:
            return VmaName("[vdso]", anon, None, 0, 0)
        if mm is not None:
            if lay.heap_test == "strict":
                heap = raw.start < mm.brk and raw.end > mm.start_brk
            else:
                heap = raw.start <= mm.brk and raw.end >= mm.start_brk
            if heap:
                return VmaName("[heap]", anon, None, 0, 0)
            if raw.start <= mm.start_stack <= raw.end:
                return VmaName("[stack]", anon, None, 0, 0)
        if anon is not None:
            return VmaName(f"[anon:{anon}]", anon, None, 0, 0)
        return VmaName("", anon, None, 0, 0)

    # -- names ---------------------------------------------------------------

    def ops_name_fn(self, ops: int) -> Optional[str]:
        """The symbol name of ``vm_ops->name``, if it has one."""
        if ops in self._ops_names:
            return self._ops_names[ops]
        name = None
        try:
            off = drgn.offsetof(self.prog.type("struct vm_operations_struct"), "name")
            fn = self.prog.read_u64(ops + off)
            if fn:
                name = self.prog.symbol(fn).name
        except (LookupError, drgn.FaultError, ValueError):
            name = None
        self._ops_names[ops] = name
        return name

    def read_cstring(self, addr: int, limit: int = 256) -> Optional[str]:
        try:
            b = self.prog.read(addr, limit)
        except drgn.FaultError:
            try:
                b = self.prog.read(addr, 64)
            except drgn.FaultError:
                return None
        return b.split(b"\0", 1)[0].decode("utf-8", "replace")

    def special_mapping_name(self, private_data: int) -> Optional[str]:
        """``((struct vm_special_mapping *)vm_private_data)->name``."""
        try:
            off = drgn.offsetof(self.prog.type("struct vm_special_mapping"), "name")
            ptr = self.prog.read_u64(private_data + off)
        except (LookupError, drgn.FaultError):
            return None
        return self.read_cstring(ptr) if ptr else None

    def anon_vma_name(self, anon_name: int) -> Optional[str]:
        """``anon_vma_name->name`` (a flexible array after the kref)."""
        try:
            off = drgn.offsetof(self.prog.type("struct anon_vma_name"), "name")
        except LookupError:
            off = 4
        return self.read_cstring(anon_name + off)

    def file_info(self, file: int, root: Tuple[int, int]) -> Tuple[str, int, int]:
        """(path as /proc/PID/maps prints it, dev_t, inode number) of a file."""
        key = (file, root)
        got = self._paths.get(key)
        if got is None:
            got = self._paths[key] = self._file_info(file, root)
        return got

    def _file_layout(self) -> Dict[str, int]:
        if self._file is None:
            p = self.prog
            f = p.type("struct file")
            d = p.type("struct dentry")
            m = p.type("struct mount")
            i = p.type("struct inode")
            self._file = {
                "f_mnt": drgn.offsetof(f, "f_path.mnt"), "f_dentry": drgn.offsetof(f, "f_path.dentry"),
                "f_inode": drgn.offsetof(f, "f_inode"),
                "d_parent": drgn.offsetof(d, "d_parent"), "d_name": drgn.offsetof(d, "d_name.name"),
                "d_op": drgn.offsetof(d, "d_op"), "d_inode": drgn.offsetof(d, "d_inode"),
                "d_hash_pprev": drgn.offsetof(d, "d_hash.pprev"),
                "d_dname": drgn.offsetof(p.type("struct dentry_operations"), "d_dname"),
                "m_mnt": drgn.offsetof(m, "mnt"), "m_parent": drgn.offsetof(m, "mnt_parent"),
                "m_mountpoint": drgn.offsetof(m, "mnt_mountpoint"),
                "mnt_root": drgn.offsetof(p.type("struct vfsmount"), "mnt_root"),
                "i_ino": drgn.offsetof(i, "i_ino"), "i_sb": drgn.offsetof(i, "i_sb"),
                "s_dev": drgn.offsetof(p.type("struct super_block"), "s_dev"),
            }
        return self._file

    def _file_info(self, file: int, root: Tuple[int, int]) -> Tuple[str, int, int]:
        L = self._file_layout()
        r64 = self.prog.read_u64
        try:
            inode = r64(file + L["f_inode"])
            ino = r64(inode + L["i_ino"])
            dev = self.prog.read_u32(r64(inode + L["i_sb"]) + L["s_dev"])
            mnt = r64(file + L["f_mnt"])
            dentry = r64(file + L["f_dentry"])
            path = self.d_path(mnt, dentry, root, ino)
        except drgn.FaultError as e:
            return f"[unreadable file {file:#x}: {e}]", 0, 0
        return path.replace("\n", "\\012"), dev, ino

    def _name(self, dentry: int) -> str:
        ptr = self.prog.read_u64(dentry + self._file_layout()["d_name"])
        return self.read_cstring(ptr) or ""

    def d_path(self, mnt: int, dentry: int, root: Tuple[int, int], ino: int) -> str:
        """``d_path()``: a d_dname-named pseudo file, else the dentry chain
        up to ``root`` (crossing mounts), plus " (deleted)" when unlinked."""
        L = self._file_layout()
        r64 = self.prog.read_u64
        mnt_root = r64(mnt + L["mnt_root"])
        d_op = r64(dentry + L["d_op"])
        parent = r64(dentry + L["d_parent"])
        is_root = parent == dentry
        if d_op and (not is_root or dentry != mnt_root):
            fn = r64(d_op + L["d_dname"])
            if fn:
                return self._d_dname(fn, dentry, ino)
        deleted = not is_root and r64(dentry + L["d_hash_pprev"]) == 0
        parts: List[str] = []
        m = mnt - L["m_mnt"]  # container_of(vfsmount, struct mount, mnt)
        for _ in range(MAX_PATH_DEPTH):
            if (dentry, mnt) == (root[1], root[0]):
                break
            parent = r64(dentry + L["d_parent"])
            if dentry == r64(mnt + L["mnt_root"]):
                mp = r64(m + L["m_parent"])
                if mp != m:
                    dentry = r64(m + L["m_mountpoint"])
                    m = mp
                    mnt = m + L["m_mnt"]
                    continue
                break  # the global root
            if dentry == parent:
                break  # escaped
            parts.append(self._name(dentry))
            dentry = parent
        path = "/" + "/".join(reversed(parts))
        return path + (" (deleted)" if deleted else "")

    def _d_dname(self, fn: int, dentry: int, ino: int) -> str:
        try:
            name = self.prog.symbol(fn).name
        except LookupError:
            name = ""
        dn = self._name(dentry)
        if name == "simple_dname":
            return f"/{dn} (deleted)"
        if name == "anon_inodefs_dname":
            return f"anon_inode:{dn}"
        if name == "pipefs_dname":
            return f"pipe:[{ino}]"
        if name == "sockfs_dname":
            return f"socket:[{ino}]"
        return f"[{name or 'd_dname'}:{dn}]"


class MmView:
    """One mm's VMAs as a reader of its memory needs them, found by address
    rather than listed: fresh lookups (the gate VMA, never in the tree, by
    its fixed range), the mm's guard and the rules of the kernel's own
    lockless lookup -- the ``LiveMm`` of :mod:`kcoretool.reader.uread` --
    and, for a dump, :meth:`vma_range`."""

    def __init__(self, r: TaskReader, mm: RawMm, gate: Optional[RawVma]) -> None:
        self.r = r
        self.mm = mm
        self.gate = gate
        self._walked: Optional[Tuple[List[int], List[RawVma]]] = None

    def guard(self) -> Optional[MmGuard]:
        return self.r.mm_guard(self.mm.address)

    def lookup(self, addr: int) -> Optional[Tuple[Optional[RawVma], int, int]]:
        got = self.r.vma_lookup(self.mm, addr)
        g = self.gate
        if got is not None and got[0] is None and g is not None and got[1] <= addr < got[2]:
            if g.start <= addr < g.end:
                return g, g.start, g.end
            if addr < g.start:
                return None, got[1], min(got[2], g.start)
        return got

    def unusable(self, vma: RawVma, guard: Any) -> Optional[str]:
        if self.gate is not None and vma.address == self.gate.address:
            return None
        return self.r.vma_unusable(vma, self.mm.address, guard)

    def vma_range(self, addr: int) -> Tuple[Optional[RawVma], int, int]:
        """``(vma or None, start, end)`` covering ``addr`` in a dump: a
        lookup, or where the index is damaged under ``addr``, the VMAs a
        whole walk finds (a gap then ends at the next one's start)."""
        got = self.lookup(addr)
        if got is not None and (got[0] is not None or got[2] > addr):
            return got
        if self._walked is None:
            vmas = list(self.r.vmas(self.mm, WalkLog(), "vma_range"))
            if self.gate is not None:
                vmas.append(self.gate)
            self._walked = ([v.start for v in vmas], vmas)
        starts, vmas = self._walked
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < vmas[i].end:
            return vmas[i], vmas[i].start, vmas[i].end
        nxt = next((v.start for v in vmas if v.start > addr), 1 << 64)
        return None, vmas[i].end if i >= 0 else 0, nxt


def _symbol_address(prog: drgn.Program, name: str) -> Optional[int]:
    try:
        return int(prog.symbol(name).address)
    except LookupError:
        pass
    try:
        return int(prog[name].address_)
    except (KeyError, LookupError, ValueError, TypeError):
        return None


def dev_major_minor(dev: int) -> Tuple[int, int]:
    """Kernel-internal dev_t (MINORBITS 20), as /proc/PID/maps prints it."""
    return dev >> MINORBITS, dev & ((1 << MINORBITS) - 1)


Reader = Callable[[int, int], bytes]


def user_constants(prog: drgn.Program) -> Dict[str, Any]:
    """What a user-memory read needs beyond the task: the zero page's PFNs
    (``zero_pfn``, ``huge_zero_pfn``), ``nr_swapfiles``, the struct page
    array (``vmemmap``) and ``sizeof(struct page)`` (``page_size``); a
    value the kernel lacks or the dump left out is None."""

    def u(name: str, size: int = 8) -> Optional[int]:
        a = _symbol_address(prog, name)
        if a is None:
            return None
        try:
            return prog.read_u64(a) if size == 8 else prog.read_u32(a)
        except drgn.FaultError:
            return None

    return {
        # 7.x renamed zero_pfn to zero_page_pfn (seen in Debian's 7.3.4)
        "zero_pfn": u("zero_pfn") if _symbol_address(prog, "zero_pfn") is not None else u("zero_page_pfn"),
        "huge_zero_pfn": u("huge_zero_pfn"),
        "nr_swapfiles": u("nr_swapfiles", 4),
        "vmemmap": u("vmemmap_base") or VMEMMAP_START_L4,
        "page_size": int(drgn.sizeof(prog.type("struct page"))),
    }
