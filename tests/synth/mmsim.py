# SPDX-License-Identifier: LGPL-2.1-or-later
"""
A process's mm as the kernel changes it, one atomic step at a time, for
racing the live user reader against munmap, mmap, MAP_FIXED and mremap.

:class:`SimMm` keeps what a lockless reader of ``/proc/kcore`` sees -- the
VMA tree, the VMA structs (``vm_lock_seq``, ``detached`` or ``vm_refcnt``),
the mm's guard words (``ctx_id``, ``tlb_gen``, ``mm_lock_seq`` or
``vmacache_seqnum``), x86_64 page tables and frames -- and changes them the
way each kernel does (``kernel``):

=========  ================================================================
"5.10"     ``__do_munmap()``: ``detach_vmas_to_be_unmapped()`` (bumps
           ``vmacache_seqnum``), downgrade, ``unmap_region()``; MAP_FIXED
           unmaps fully first; no per-VMA lock
"6.1"      ``do_mas_align_munmap()``: tree cleared, downgrade, zap; no
           sequence count at all
"6.12"     ``vms_gather_munmap_vmas()`` (write-lock and mark detached),
           clear, ``vms_complete_munmap_vmas()`` (downgrade: int
           ``mm_lock_seq``++; zap); ``__mmap_region()`` may store the new VMA
           (write-locked) before the old PTEs are zapped
"7.x"      as 6.12 with ``vm_refcnt`` (0 = detached, the exclude bit while a
           writer waits) and a seqcount ``mm_lock_seq`` (odd while
           mmap_lock is write-held)
=========  ================================================================

Every kernel zaps the same way: clear the PTEs, increment ``tlb_gen`` and
flush, free the frames.  Freed frames are poisoned and reused last-in
first-out, as are VMA structs and anon_vmas, so a new mapping at the same
address gets the same struct, anon_vma and frames -- the ABA case.

Operations are generators; each ``next()`` does one atomic step.  Every
page a region maps is tagged :func:`tag` (generation, page index);
:meth:`SimMm.mapped` is the set of (generation, VMA start) of the attached
VMAs now -- a reader's data page is right if its tag's generation and the
VMA start it is attributed to were such a pair at some moment of the read.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Dict, Iterator, List, Optional, Set, Tuple

from kcoretool.kernel.task import VM_REFCNT_EXCLUDE_READERS, MmGuard
from tests import ptbuild

PAGE = 4096
MAGIC = 0x5A5A
POISON = 0xDEADBEEF_DEADBEEF
KERNELS = ("5.10", "6.1", "6.12", "7.x")
VMA_LOCK = {"5.10": "none", "6.1": "none", "6.12": "seq_detached", "7.x": "refcnt"}
MM = 0xFFFF888000001000


def tag(gen: int, index: int) -> int:
    return MAGIC << 48 | (gen & 0xFFFF) << 16 | index


def untag(word: int) -> Optional[Tuple[int, int]]:
    """(generation, index) of a tagged word, None for zeros; raises on
    anything else (poison: a freed frame's bytes)."""
    if word == 0:
        return None
    if word >> 48 != MAGIC:
        raise ValueError(f"not a page of any mapping: {word:#x}")
    return (word >> 16) & 0xFFFF, word & 0xFFFF


@dataclasses.dataclass
class SimVma:
    address: int
    start: int
    end: int
    pgoff: int
    flags: int = 0x73
    file: int = 0
    anon_vma: int = 0
    mm: int = MM
    lock_seq: Optional[int] = None
    detached: Optional[bool] = None
    refcnt: Optional[int] = None
    #: the region generation it maps (the oracle's, not a kernel field)
    gen: int = 0


class SimMm:
    def __init__(self, kernel: str) -> None:
        assert kernel in KERNELS
        self.kernel = kernel
        self.m, self.root, self._map4k, _, _ = ptbuild.build()
        self.ctx_id = 7
        self.tlb_gen = 1
        self.seq = 0  # mm_lock_seq (6.12: int, 7.x: seqcount) or vmacache_seqnum (5.10)
        self.tree: Dict[int, SimVma] = {}
        self.pte: Dict[int, int] = {}
        self._free_frames: List[int] = []
        self._next_frame = 0x4000000
        self._free_structs: List[int] = []
        self._next_struct = 0xFFFF888000100000
        self._free_anon: List[int] = []
        self._next_anon = 0xFFFF888000800000

    def mapped(self) -> Set[Tuple[int, int]]:
        """(generation, start) of every attached VMA in the tree now."""
        return {(v.gen, v.start) for v in self.tree.values() if not v.detached and v.refcnt != 0}

    # -- what the reader sees -------------------------------------------------

    def guard(self, with_tlb_gen: bool = True) -> Optional[MmGuard]:
        if self.kernel == "7.x" and self.seq & 1:
            return None  # mmap_lock_speculate_try_begin() fails
        seq = None if self.kernel == "6.1" else self.seq
        return MmGuard(self.ctx_id, self.tlb_gen if with_tlb_gen else None, seq)

    def lookup(self, addr: int) -> Tuple[Optional[SimVma], int, int]:
        lo, hi = 0, 1 << 64
        for v in self.tree.values():
            if v.start <= addr < v.end:
                return dataclasses.replace(v), v.start, v.end
            if v.end <= addr:
                lo = max(lo, v.end)
            elif v.start > addr:
                hi = min(hi, v.start)
        return None, lo, hi

    # -- primitives -------------------------------------------------------------

    def _pt(self, va: int) -> int:
        t = self.root
        for shift in (39, 30, 21):
            e = struct.unpack_from("<Q", self.m.pages[t], ((va >> shift) & 511) * 8)[0]
            t = e & ~0xFFF & ((1 << 52) - 1) & ~(1 << 63)
        return t

    def _set_pte(self, va: int, frame: Optional[int]) -> None:
        if frame is None:
            self.m.set(self._pt(va), (va >> 12) & 511, 0)
            self.pte.pop(va, None)
        else:
            self._map4k(va, frame)
            self.pte[va] = frame

    def _alloc_frame(self) -> int:
        if self._free_frames:
            f = self._free_frames.pop()
        else:
            f = self._next_frame
            self._next_frame += PAGE
        self.m.write(f, bytes(PAGE))  # __GFP_ZERO / clear_user_highpage
        return f

    def _free_frame(self, f: int) -> None:
        self.m.write(f, struct.pack("<Q", POISON) * (PAGE // 8))
        self._free_frames.append(f)

    def _alloc_struct(self) -> int:
        if self._free_structs:
            return self._free_structs.pop()
        a = self._next_struct
        self._next_struct += 0x100
        return a

    def _new_vma(self, start: int, end: int, pgoff: Optional[int] = None) -> SimVma:
        k = self.kernel
        v = SimVma(self._alloc_struct(), start, end, start >> 12 if pgoff is None else pgoff)
        if k == "6.12":
            v.lock_seq, v.detached = -1, False
        elif k == "7.x":
            v.lock_seq, v.refcnt = 0xFFFFFFFF, 0  # detached until vma_mark_attached()
        return v

    def _write_lock(self) -> None:
        if self.kernel == "7.x":
            self.seq += 1  # mm_lock_seqcount_begin(): odd

    def _write_unlock(self) -> None:
        if self.kernel in ("6.12", "7.x"):
            self.seq += 1  # vma_end_write_all()

    _downgrade = _write_unlock  # mmap_write_downgrade() -> vma_end_write_all()

    def _vma_start_write(self, v: SimVma) -> Iterator[None]:
        if self.kernel == "7.x":
            v.refcnt = (v.refcnt or 0) | VM_REFCNT_EXCLUDE_READERS  # __vma_enter_locked()
            yield
            v.lock_seq = self.seq
            v.refcnt &= ~VM_REFCNT_EXCLUDE_READERS
        elif self.kernel == "6.12":
            v.lock_seq = self.seq

    def _attach(self, v: SimVma) -> None:
        if self.kernel == "7.x":
            v.refcnt = 1
        self.tree[v.start] = v

    def _detach(self, v: SimVma) -> None:
        if self.kernel == "6.12":
            v.detached = True
        elif self.kernel == "7.x":
            v.refcnt = 0

    def _tree_remove(self, v: SimVma) -> None:
        if self.tree.get(v.start) is v:
            del self.tree[v.start]
        if self.kernel == "5.10":
            self.seq += 1  # vmacache_invalidate()

    def _zap(self, v: SimVma) -> Iterator[None]:
        """unmap_vmas() + tlb_finish_mmu(): clear, flush (tlb_gen first), free."""
        gone = []
        for va in range(v.start, v.end, PAGE):
            f = self.pte.get(va)
            if f is not None:
                self._set_pte(va, None)
                gone.append(f)
                yield
        if gone:
            self.tlb_gen += 1  # flush_tlb_mm_range(): inc_mm_tlb_gen()
            yield
            for f in gone:
                self._free_frame(f)
            yield

    def _free_vma(self, v: SimVma) -> None:
        if self.kernel == "6.12":
            v.start, v.end = 0xFFFF888000222000, 0xFFFFFFFF81234560  # vm_rcu over vm_start/vm_end
        if v.anon_vma:
            self._free_anon.append(v.anon_vma)
        self._free_structs.append(v.address)

    # -- operations (generators: one atomic step per next()) -----------------------

    def mmap(self, start: int, pages: int, gen: int, touch: int = -1) -> Iterator[None]:
        """An anonymous mapping (placed at ``start``), then the process
        faults in and tags its first ``touch`` pages (all by default)."""
        self._write_lock()
        yield
        v = self._new_vma(start, start + pages * PAGE)
        v.gen = gen
        yield from self._vma_start_write(v)  # __mmap_region(): locked before insertion
        self._attach(v)
        yield
        self._write_unlock()
        yield
        yield from self.fault_in(v, gen, range(pages if touch < 0 else touch))

    def fault_in(self, v: SimVma, gen: int, indexes: range) -> Iterator[None]:
        """do_anonymous_page() under the per-VMA read lock (no sequence count
        moves): anon_vma_prepare(), a zeroed frame, the PTE; then the
        process writes its tags."""
        for i in indexes:
            if not v.anon_vma:
                v.anon_vma = self._free_anon.pop() if self._free_anon else self._new_anon()
                yield
            f = self._alloc_frame()
            self._set_pte(v.start + i * PAGE, f)
            yield
            self.m.write(f, struct.pack("<Q", tag(gen, i)) * (PAGE // 8))
            yield

    def _new_anon(self) -> int:
        a = self._next_anon
        self._next_anon += 0x80
        return a

    def munmap(self, start: int) -> Iterator[None]:
        v = self.tree[start]
        self._write_lock()
        yield
        if self.kernel in ("6.12", "7.x"):
            yield from self._vma_start_write(v)  # vms_gather_munmap_vmas()
            yield
            self._detach(v)
            yield
        self._tree_remove(v)  # vma_iter_clear_gfp() / mas_store_prealloc(NULL) / detach_vmas_to_be_unmapped()
        yield
        self._downgrade()  # vms_complete_munmap_vmas() / do_mas_align_munmap(): mmap_write_downgrade()
        yield
        yield from self._zap(v)
        self._free_vma(v)
        yield

    def mmap_fixed(self, start: int, pages: int, gen: int) -> Iterator[None]:
        """mmap(MAP_FIXED) over the VMA at ``start``.  6.12/7.x
        (``__mmap_region()``): gather the old VMA, store the new one
        (write-locked) over it, and only then zap the old PTEs; 5.10/6.1
        unmap the old mapping completely first."""
        if self.kernel in ("5.10", "6.1"):
            yield from self.munmap(start)
            yield from self.mmap(start, pages, gen)
            return
        old = self.tree[start]
        self._write_lock()
        yield
        yield from self._vma_start_write(old)
        self._detach(old)
        yield
        v = self._new_vma(start, start + pages * PAGE)
        v.gen = gen
        yield from self._vma_start_write(v)
        self._attach(v)  # vma_iter_store(): replaces old in the tree
        yield
        yield from self._zap(old)  # vms_complete_munmap_vmas(): vms_clear_ptes()
        self._free_vma(old)
        yield
        self._write_unlock()
        yield
        yield from self.fault_in(v, gen, range(pages))

    def madv_dontneed(self, start: int) -> Iterator[None]:
        """madvise(MADV_DONTNEED) of a whole VMA: a zap under the mmap read
        lock (or, newer, the per-VMA lock) -- no sequence count moves, the
        VMA stays as it is; only the TLB flush says frames went."""
        yield from self._zap(self.tree[start])

    def refault(self, start: int, gen: int) -> Iterator[None]:
        v = self.tree[start]
        yield from self.fault_in(v, gen, range((v.end - v.start) // PAGE))

    def mremap_move(self, start: int, new_start: int) -> Iterator[None]:
        """mremap(MREMAP_MAYMOVE|MREMAP_FIXED): ``copy_vma()`` links the new
        VMA (write-locked), ``move_page_tables()`` moves the PTEs and flushes
        the old range, then the old VMA is unmapped (its PTEs already gone)."""
        old = self.tree[start]
        n = (old.end - old.start) // PAGE
        self._write_lock()
        yield
        yield from self._vma_start_write(old)
        new = self._new_vma(new_start, new_start + n * PAGE, pgoff=old.pgoff)
        new.anon_vma, new.gen = old.anon_vma, old.gen
        yield from self._vma_start_write(new)
        self._attach(new)
        yield
        moved = False
        for i in range(n):
            f = self.pte.get(start + i * PAGE)
            if f is not None:
                self._set_pte(start + i * PAGE, None)
                self._set_pte(new_start + i * PAGE, f)
                moved = True
                yield
        if moved:
            self.tlb_gen += 1  # flush_tlb_range() of the old range
            yield
        self._detach(old)
        self._tree_remove(old)
        yield
        old.anon_vma = 0  # the anon_vma lives on in the new VMA
        self._free_vma(old)
        self._write_unlock()
        yield


def run(ops: Iterator[None]) -> None:
    for _ in ops:
        pass
