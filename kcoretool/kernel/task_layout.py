# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Task and VMA layout detection
-----------------------------

What a kernel's tasks, ``mm_struct``\\ s and VMAs look like, decided once
from struct members (never from version strings), each with the kernel
commit behind it -- the task-memory counterpart of
:mod:`kcoretool.kernel.layout`.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import drgn

from kcoretool.kernel.layout import has_member, require_members

__all__ = ("TaskLayout", "detect_task_layout")


@dataclasses.dataclass(frozen=True)
class TaskLayout:
    #: where an mm's VMAs live: ``"maple"`` (``mm->mm_mt``, 6.1+) or
    #: ``"rbtree"`` (``mm->mmap`` list + ``mm->mm_rb``, <= 6.0).
    vma_index: str
    #: the per-VMA lock: ``"none"`` (< 6.4), ``"seq_detached"`` (6.4-6.14:
    #: ``vm_lock_seq`` + ``vm_lock`` + ``bool detached``) or ``"refcnt"``
    #: (``vm_lock_seq`` + ``refcount_t vm_refcnt``, 0 = detached).
    vma_lock: str
    #: ``mm->mm_lock_seq``: ``"none"``, ``"int"`` (6.4-6.13) or
    #: ``"seqcount"`` (6.14+: ``.sequence``, odd while mmap_lock is write-held).
    mm_lock_seq: str
    #: ``mm->rss_stat``: ``"atomic"`` (``count[4]``, <= 6.1) or ``"percpu"``
    #: (``struct percpu_counter [4]``, 6.2+).
    rss: str
    #: per-thread unflushed RSS deltas in ``task->rss_stat`` (<= 6.1,
    #: SPLIT_RSS_COUNTING).
    task_rss: bool
    #: ``vm_area_struct.anon_name``: ``"none"``, ``"union"`` (6.1: shares a
    #: union with ``shared``, valid only without ``vm_file``) or ``"field"``.
    anon_name: str
    #: /proc/PID/maps names a file VMA with an anon name ``[anon_shmem:...]``.
    anon_shmem_name: bool
    #: the ``[heap]`` test: ``"inclusive"`` (``vm_start <= brk && vm_end >=
    #: start_brk``) or ``"strict"`` (``vma_is_initial_heap()``: < and >).
    heap_test: str
    #: ``task_struct.__state`` (5.14+) or ``.state``.
    task_state: str
    #: ``task_struct.thread_group`` list exists (threads are also on
    #: ``signal->thread_head`` in every kernel this tool reads).
    thread_group: bool
    #: a short human label ("6.4-6.14", ...), for messages only.
    label: str
    #: x86 ``mm->context.ctx_id`` / ``.tlb_gen``: a never-reused id of the
    #: mm and its TLB flush generation, bumped before every flush (so before
    #: any frame or page table it mapped can be freed).
    tlb_gen: bool = False
    #: ``mm->vmacache_seqnum`` (<= 6.0): bumped whenever a VMA is unlinked.
    vmacache_seq: bool = False
    evidence: Tuple[Tuple[str, str, str, str], ...] = dataclasses.field(
        default=(), compare=False, repr=False
    )

    def describe(self) -> List[Dict[str, str]]:
        return [{"feature": f, "value": v, "evidence": e, "commit": c} for f, v, e, c in self.evidence]


def detect_task_layout(prog: drgn.Program) -> TaskLayout:
    ev: List[Tuple[str, str, str, str]] = []
    vma = "struct vm_area_struct"
    mm = "struct mm_struct"
    require_members(prog, "task", vma, "vm_start", "vm_end", "vm_flags", "vm_mm")
    require_members(prog, "task", mm, "pgd")

    # d4af56c5c7c6 ("mm: start tracking VMAs with maple tree"), then
    # 763ecb035029 ("mm: remove the vma linked list") and 524e00b36e8c
    # ("mm: remove rb tree.") (all in v6.1).
    vma_index = "maple" if has_member(prog, mm, "mm_mt") else "rbtree"
    ev.append(("vma_index", vma_index, "member mm_struct.mm_mt",
               '763ecb035029 ("mm: remove the vma linked list"), 524e00b36e8c ("mm: remove rb tree.") (v6.1)'))

    # "mm: add per-VMA lock and helper functions to control it" and "mm:
    # introduce vma detached flag" (v6.4); "mm: replace vm_lock and detached
    # flag with a reference count" (Suren Baghdasaryan; after 6.14, by 6.18).
    if has_member(prog, vma, "vm_refcnt"):
        vma_lock = "refcnt"
    elif has_member(prog, vma, "detached"):
        vma_lock = "seq_detached"
    else:
        vma_lock = "none"
    ev.append(("vma_lock", vma_lock, "members vm_area_struct.vm_refcnt, .detached",
               '"mm: introduce vma detached flag" (v6.4); "mm: replace vm_lock and detached flag '
               'with a reference count" (after v6.14)'))

    mm_lock_seq = "none"
    if has_member(prog, mm, "mm_lock_seq"):
        t = prog.type(mm).member("mm_lock_seq").type
        mm_lock_seq = "seqcount" if drgn.sizeof(t) and _is_struct(t) else "int"
    ev.append(("mm_lock_seq", mm_lock_seq, "type of mm_struct.mm_lock_seq",
               '"mm: add per-VMA lock" (v6.4, int); "mm: convert mm_lock_seq to a proper seqcount" (v6.14)'))

    rss = "atomic"
    if has_member(prog, mm, "rss_stat"):
        t = prog.type(mm).member("rss_stat").type
        if t.unqualified().kind == drgn.TypeKind.ARRAY:
            rss = "percpu"
    ev.append(("rss", rss, "type of mm_struct.rss_stat",
               'f1a7941243c1 ("mm: convert mm\'s rss stats into percpu_counter") (v6.2)'))
    task_rss = has_member(prog, "struct task_struct", "rss_stat")
    ev.append(("task_rss", str(task_rss), "member task_struct.rss_stat",
               'f1a7941243c1 (v6.2) removed SPLIT_RSS_COUNTING'))

    if not has_member(prog, vma, "anon_name"):
        anon_name = "none"
    else:
        anon_name = "field"
        for m in prog.type(vma).members:
            if m.name is None and _is_struct(m.type) and m.type.has_member("anon_name"):
                anon_name = "union"
    ev.append(("anon_name", anon_name, "member vm_area_struct.anon_name (in an anonymous union?)",
               '9a10064f5625 ("mm: add a field to store names for private anonymous memory") (v5.17); '
               'd09e8ca6cb93 ("mm: anonymous shared memory naming") (v6.2) made it a field'))
    anon_shmem_name = anon_name == "field"
    ev.append(("anon_shmem_name", str(anon_shmem_name), "anon_name outside the union",
               'd09e8ca6cb93 ("mm: anonymous shared memory naming") (v6.2)'))

    # "mm: factor out VMA stack and heap checks" (v6.6?; not verified) made
    # the heap test strict.  No member changed with it: the nearest probe is
    # the per-VMA lock (v6.4), so 6.4 and 6.5 are classed strict.
    heap_test = "strict" if vma_lock != "none" else "inclusive"
    ev.append(("heap_test", heap_test, "per-VMA lock present (nearest probe; 6.4-6.5 unverified)",
               '"mm: factor out VMA stack and heap checks" (v6.6, not verified)'))

    task_state = "__state" if has_member(prog, "struct task_struct", "__state") else "state"
    ev.append(("task_state", task_state, "member task_struct.__state",
               '2f064a59a11f ("sched: Change task_struct::state") (v5.14)'))
    thread_group = has_member(prog, "struct task_struct", "thread_group")
    ev.append(("thread_group", str(thread_group), "member task_struct.thread_group",
               '"kill task_struct->thread_group" (Oleg Nesterov; v6.7?, not verified)'))

    # f39681ed0f48 ("x86/mm: Give each mm TLB flush generation a unique ID")
    # (v4.14): every TLB flush of an mm first increments its tlb_gen
    # (flush_tlb_mm_range(), arch_tlbbatch_add_pending()/_add_mm()).
    tlb_gen = _has_path(prog, mm, "context.tlb_gen") and _has_path(prog, mm, "context.ctx_id")
    ev.append(("tlb_gen", str(tlb_gen), "members mm_struct.context.ctx_id, .tlb_gen",
               'f39681ed0f48 ("x86/mm: Give each mm TLB flush generation a unique ID") (v4.14)'))
    # "mm: remove vmacache" (Liam Howlett, v6.1) took it away with the rbtree.
    vmacache_seq = has_member(prog, mm, "vmacache_seqnum")
    ev.append(("vmacache_seq", str(vmacache_seq), "member mm_struct.vmacache_seqnum",
               '"mm: remove vmacache" (v6.1) removed it'))

    label = {"none": "6.1-6.3" if vma_index == "maple" else "<=6.0",
             "seq_detached": "6.4-6.14", "refcnt": "6.15+"}[vma_lock]
    return TaskLayout(vma_index=vma_index, vma_lock=vma_lock, mm_lock_seq=mm_lock_seq, rss=rss,
                      task_rss=task_rss, anon_name=anon_name, anon_shmem_name=anon_shmem_name,
                      heap_test=heap_test, task_state=task_state, thread_group=thread_group,
                      label=label, tlb_gen=tlb_gen, vmacache_seq=vmacache_seq, evidence=tuple(ev))


def _has_path(prog: drgn.Program, type_name: str, path: str) -> bool:
    """A nested member (``"context.tlb_gen"``) exists."""
    try:
        drgn.offsetof(prog.type(type_name), path)
        return True
    except (LookupError, ValueError, TypeError):
        return False


def _is_struct(t: drgn.Type) -> bool:
    t = t.unqualified()
    while t.kind == drgn.TypeKind.TYPEDEF:
        t = t.type.unqualified()
    return t.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION)
