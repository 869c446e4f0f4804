# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Reading a task's memory
-----------------------

:class:`UserReader` reads user virtual memory through the task's own page
tables (``mm->pgd``; with PTI that is the kernel copy, whose lower levels
the user copy shares), with a state for every page:

``data``
    a present PTE/PMD/PUD (4K, 2M THP or 1G), or a PROT_NONE one (NUMA
    hinting; its PFN is stored inverted, ``pgtable-invert.h``), or a file page
    found in the page cache (detail ``page cache``);
``zero-page``
    the PTE maps the shared zero page (``zero_pfn``, or THP's
    ``huge_zero_pfn``);
``not-present``
    nothing mapped (never faulted in);
``swapped``
    a swap entry (detail: swap type and offset), or a migration/device
    entry (detail names it);
``file-not-cached``
    a file VMA whose page is neither mapped nor in the page cache;
``excluded`` / ``unreadable``
    the page is mapped but the dump left it out / live memory unreadable;
``no-vma``
    no VMA covers the address;
``raced``
    live only: the VMA or the mapping kept changing under the read.

A live mm changes while it is read, and nothing here can take its locks, so
a live read is a seqlock read section checked after the fact (see
:meth:`UserReader.read`): the mm's guard (:class:`kcoretool.kernel.task.MmGuard`:
TLB generation, mm sequence count) first; VMAs by fresh lookups, each one
usable by the rules of the kernel's own lockless lookup
(``lock_vma_under_rcu()``); page tables and pages read; then every lookup,
VMA and page-table entry read again and found the same, and the guard last,
unmoved.  Anything else re-reads, a bounded number of times, then reports
the range ``raced``.
"""

from __future__ import annotations

import time
from typing import Any, BinaryIO, Callable, Dict, Hashable, Iterable, Iterator, List, Optional, Protocol, Tuple

import drgn

from kcoretool.errors import AddressError
from kcoretool.reader.pagetable import PageTableWalker
from kcoretool.reader.report import PageRun, ReadReport

__all__ = ("UserReader", "decode_swap_entry", "user_reader_for")

PAGE = 4096
_P = 1 << 0
_PSE = 1 << 7
_PROTNONE = 1 << 8  # _PAGE_GLOBAL, meaning PROT_NONE when not present
_PHYS = ((1 << 52) - 1) & ~(PAGE - 1)
#: pages read between revalidations (live reads above WHOLE_READ_LIMIT)
CHUNK_PAGES = 64
MAX_ATTEMPTS = 4
#: live reads up to this size are checked whole: one guard from the first
#: page to the last, or a VMA unmapped and mapped again alike (same address,
#: same slab object) between two chunks would splice two mappings' pages
#: into one read.  Bigger reads stream, each chunk checked on its own.
WHOLE_READ_LIMIT = 16 << 20
BACKOFF = (0.0005, 0.002, 0.01)


class LiveMm(Protocol):
    """What a live read asks of the kernel layer (``user_reader_for`` gives
    one: :class:`kcoretool.kernel.task.MmView`)."""

    def guard(self) -> Optional[Hashable]:
        """The mm's guard now; None: a read must not start now."""

    def lookup(self, addr: int) -> Optional[Tuple[Optional[Any], int, int]]:
        """(VMA or None, start, end) covering ``addr`` by a fresh lookup;
        None if the lookup met a structure changing under it."""

    def unusable(self, vma: Any, guard: Hashable) -> Optional[str]:
        """Why ``vma`` must not be read as the VMA of its range (None: ok)."""


class VmaIndex(Protocol):
    """How a read finds the VMAs of its range (:class:`kcoretool.kernel.task.MmView`)."""

    def vma_range(self, addr: int) -> Tuple[Optional[Any], int, int]:
        """(VMA or None, start, end) covering ``addr``: for None, the gap's end
        is where the next VMA starts."""


class _Moved(Exception):
    """A live lookup met the mm changing: this attempt is void."""


def decode_swap_entry(v: int) -> Tuple[int, int]:
    """(type, offset) of an x86_64 swap-format entry (pgtable_64.h:
    type in bits 59-63, offset stored inverted below it)."""
    return v >> 59, ((((~v) << 5) & ((1 << 64) - 1)) >> 14)


class UserReader:
    """Read one task's user memory.

    :param vmas: a :class:`VmaIndex` of the task's mm (only its VMAs
        covering the range are looked up).
    :param walker: a :class:`PageTableWalker` rooted at the mm's PGD.
    :param read_phys: physical reads; AddressError for what the source lacks.
    :param page_cache: ``page_cache(vma, index) -> ("page", phys) |
        ("swap", entry) | None``: the file's page-cache entry.
    :param zero_pfns: PFNs of the zero page and the huge zero page.
    :param nr_swapfiles: swap types below this are real swap devices.
    :param live: live only: a :class:`LiveMm`; VMAs then come from fresh
        lookups, not from ``vmas``, and every read is validated.
    """

    def __init__(self, vmas: VmaIndex, walker: PageTableWalker, read_phys: Callable[[int, int], bytes], *,
                 page_cache: Optional[Callable[[object, int], Optional[Tuple[str, int]]]] = None,
                 zero_pfns: Tuple[int, ...] = (), nr_swapfiles: Optional[int] = None,
                 live: Optional[LiveMm] = None, missing_state: str = "excluded") -> None:
        self.vmas = vmas
        self.walker = walker
        self.read_phys = read_phys
        self.page_cache = page_cache
        self.zero_pfns = frozenset(p for p in zero_pfns if p is not None)
        self.nr_swapfiles = nr_swapfiles
        self.live = live
        self.missing_state = missing_state
        self._mask = ((1 << 52) - 1) & ~(PAGE - 1) & ~walker.sme_mask

    # -- one page --------------------------------------------------------------

    def entry(self, addr: int) -> Tuple[int, int]:
        """(shift, entry) of the entry that decides ``addr``."""
        last = (12, 0)
        for shift, e in self.walker.entry_chain(addr):
            last = (shift, e)
        return last

    def classify(self, vma: Any, addr: int) -> Tuple[str, Optional[int], int, Optional[str]]:
        """(state, phys or None, bytes to the end of the deciding entry's
        region, detail) for the page at ``addr`` inside ``vma``."""
        shift, e = self.entry(addr)
        size = 1 << shift
        span = size - (addr & (size - 1))
        leaf = shift == 12 or e & _PSE
        if e & _P and leaf or (not e & _P and e & _PROTNONE and leaf):
            raw = e if e & _P else ~e
            base = raw & self._mask & ~(size - 1)
            phys = base | (addr & (size - 1))
            if (base >> 12) in self.zero_pfns:
                return "zero-page", None, span, "huge zero page" if size > PAGE else None
            return "data", phys, span, None if size == PAGE else f"{size >> 20}M page"
        if e:
            if shift != 12 and not e & _P:
                # a non-present PMD/PUD with bits: a THP migration entry
                t, off = decode_swap_entry(e)
                return "swapped", None, span, f"swap-format entry type {t} offset {off:#x} ({size >> 20}M)"
            if shift == 12:
                t, off = decode_swap_entry(e)
                if self.nr_swapfiles is not None and t < self.nr_swapfiles:
                    return "swapped", None, PAGE, f"swap type {t} offset {off:#x}"
                return "swapped", None, PAGE, f"swap-format entry type {t} offset {off:#x} (migration/device)"
        # Nothing in the page tables: a file page may still be cached.
        span = min(span, PAGE) if vma.file else span
        if vma.file:
            got = self.page_cache(vma, vma.pgoff + ((addr - vma.start) >> 12)) if self.page_cache else None
            if got is not None and got[0] == "page":
                return "data", got[1] | (addr & (PAGE - 1)), PAGE - (addr & (PAGE - 1)), "page cache"
            if got is not None and got[0] == "swap":
                t, off = decode_swap_entry_value(got[1])
                return "swapped", None, PAGE - (addr & (PAGE - 1)), f"shmem swap type {t} offset {off:#x}"
            return "file-not-cached", None, PAGE - (addr & (PAGE - 1)), None
        return "not-present", None, span, None

    # -- reads -------------------------------------------------------------

    def plan(self, lo: int, hi: int) -> Iterator[Tuple[PageRun, object]]:
        """(run, vma or None) for [lo, hi), runs split at each state change."""
        pos = lo
        vmas = self.vmas
        while pos < hi:
            vma, _, nxt = vmas.vma_range(pos)
            if vma is None:
                n = min(hi, nxt) - pos
                yield PageRun(pos, n, "no-vma"), None
                pos += n
                continue
            stop = min(hi, vma.end)
            while pos < stop:
                state, phys, span, detail = self.classify(vma, pos)
                n = min(stop - pos, span)
                yield PageRun(pos, n, state, phys=phys, area=vma.start, detail=detail), vma
                pos += n

    def _fill(self, run: PageRun) -> Tuple[PageRun, Optional[bytes]]:
        if run.state != "data" or run.phys is None:
            return run, None
        try:
            return run, self.read_phys(run.phys, run.size)
        except AddressError:
            return PageRun(run.vaddr, run.size, self.missing_state, area=run.area, detail=run.detail), None

    def _pieces(self, plan: Iterable[Tuple[PageRun, object]]) -> List[Tuple[PageRun, Optional[bytes], object]]:
        out = []
        for run, vma in plan:
            if run.state == "data" and run.phys is not None and run.size > PAGE:
                # a huge page read page by page, so a missing one is named alone
                pos = run.vaddr
                while pos < run.vaddr + run.size:
                    n = min(run.vaddr + run.size - pos, PAGE - (pos & (PAGE - 1)))
                    sub = PageRun(pos, n, "data", phys=run.phys + pos - run.vaddr, area=run.area,
                                  detail=run.detail)
                    r, d = self._fill(sub)
                    out.append((r, d, vma))
                    pos += n
                continue
            r, d = self._fill(run)
            out.append((r, d, vma))
        return out

    def read(self, addr: int, size: int, sink: BinaryIO) -> ReadReport:
        """Read ``[addr, addr + size)`` into ``sink``.

        Live, the read is validated like a seqlock read section, because the
        kernel unmaps in steps a lockless reader can fall between:
        ``vms_gather_munmap_vmas()`` detaches the VMAs, the mmap_lock is
        downgraded or dropped (``mm_lock_seq`` moves then, and only then),
        and ``vms_complete_munmap_vmas()`` zaps the page tables and frees the
        pages later, under the read lock -- so a PTE can still point at a
        frame being freed, or already mapped again by the next mmap at the
        same address.  An attempt:

        1. takes the mm's guard (it must be stable: 6.14+ ``mm_lock_seq``
           even, as ``mmap_lock_speculate_try_begin()`` requires);
        2. looks every VMA (or gap) of the range up afresh, after the guard,
           and refuses one ``lock_vma_under_rcu()`` would refuse: another
           mm's, detached, readers excluded, write-locked, or not covering
           the address;
        3. walks the page tables and reads the pages;
        4. looks every VMA up again (same struct, same start, end, pgoff,
           flags, file or anon_vma, lock state; each gap still a gap),
           walks every page-table entry again (same state, same frame: the
           check ``gup_fast_pte_range()`` makes after taking its reference);
        5. takes the guard again: it must equal the first.  The TLB
           generation in it is what makes the frames safe: every TLB flush of
           the mm increments it first (``flush_tlb_mm_range()``,
           ``arch_tlbbatch_add_pending()``), and no frame or page table a PTE
           of the mm pointed to is freed before that flush; the
           ``ctx_id`` beside it rules out another mm at the same address.

        A failed attempt backs off and retries (MAX_ATTEMPTS); then the range
        is ``raced``.  Reads up to WHOLE_READ_LIMIT are one attempt
        whole; longer ones stream in CHUNK_PAGES chunks, each checked alone.
        """
        report = ReadReport(addr, size, "pagetable")
        pieces: Iterable[Tuple[PageRun, Optional[bytes], object]]
        if self.live is not None:
            pieces = self._live_read(addr, addr + size, report)
        else:
            pieces = self._chunks(addr, addr + size)
        for run, data, _ in pieces:
            sink.write(data if data is not None else bytes(run.size))
            report.add(run)
        return report

    def _chunks(self, lo: int, end: int) -> Iterator[Tuple[PageRun, Optional[bytes], object]]:
        step = CHUNK_PAGES * PAGE
        while lo < end:
            hi = min(end, (lo & ~(step - 1)) + step)
            yield from self._pieces(self.plan(lo, hi))
            lo = hi

    def _live_read(self, lo: int, end: int, report: ReadReport) -> Iterator[Tuple[PageRun, Optional[bytes], object]]:
        if end - lo <= WHOLE_READ_LIMIT:
            yield from self._live(lo, end, report)
            return
        step = CHUNK_PAGES * PAGE
        while lo < end:
            hi = min(end, (lo & ~(step - 1)) + step)
            yield from self._live(lo, hi, report)
            lo = hi

    def _live(self, lo: int, hi: int, report: ReadReport) -> List[Tuple[PageRun, Optional[bytes], object]]:
        """One validated read of [lo, hi) (bounded retries; then ``raced``)."""
        live = self.live
        assert live is not None
        for attempt in range(MAX_ATTEMPTS):
            guard = live.guard()
            if guard is not None:
                self.walker.invalidate()
                segments: List[Tuple[int, int, Any]] = []
                try:
                    pieces = self._pieces(self._live_plan(lo, hi, guard, segments))
                except _Moved:
                    pieces = None
                if pieces is not None and self._unchanged(segments, pieces, guard):
                    return pieces
            self._retry(report, attempt)
        return [(PageRun(lo, hi - lo, "raced"), None, None)]

    def _live_plan(self, lo: int, hi: int, guard: Hashable,
                   segments: List[Tuple[int, int, Any]]) -> Iterator[Tuple[PageRun, object]]:
        """Like :meth:`plan`, from fresh lookups; records each VMA's or gap's
        part of the range in ``segments``."""
        live = self.live
        assert live is not None
        pos = lo
        while pos < hi:
            got = live.lookup(pos)
            if got is None:
                raise _Moved
            vma, _, end = got
            if vma is None:
                stop = min(hi, end)
                if stop <= pos:
                    raise _Moved
                segments.append((pos, stop, None))
                yield PageRun(pos, stop - pos, "no-vma"), None
                pos = stop
                continue
            if live.unusable(vma, guard) is not None:
                raise _Moved
            stop = min(hi, vma.end)
            segments.append((pos, stop, vma))
            while pos < stop:
                state, phys, span, detail = self.classify(vma, pos)
                n = min(stop - pos, span)
                yield PageRun(pos, n, state, phys=phys, area=vma.start, detail=detail), vma
                pos += n

    def _unchanged(self, segments: List[Tuple[int, int, Any]],
                   pieces: List[Tuple[PageRun, Optional[bytes], object]], guard: Hashable) -> bool:
        """Steps 4 and 5 of :meth:`read`: the lookups, VMAs and page-table
        entries as they were, then the guard as it was."""
        live = self.live
        assert live is not None
        self.walker.invalidate()
        for lo, hi, vma in segments:
            got = live.lookup(lo)
            if got is None:
                return False
            now, _, end = got
            if vma is None:
                if now is not None or end < hi:
                    return False
                continue
            if now is None or _vma_id(now) != _vma_id(vma) or live.unusable(now, guard) is not None:
                return False
        for run, _, vma in pieces:
            if vma is None:
                continue
            state, phys, _, _ = self.classify(vma, run.vaddr)
            if state != _plan_state(run) or (run.phys is not None and phys != run.phys):
                return False
        return live.guard() == guard

    def _retry(self, report: ReadReport, attempt: int) -> None:
        """After a failed check: count it, back off."""
        report.retries += 1
        if attempt < len(BACKOFF):
            time.sleep(BACKOFF[attempt])


def _plan_state(run: PageRun) -> str:
    # a data page the dump or the machine would not give is still "data" to the plan
    return "data" if run.state in ("excluded", "unreadable") and run.phys is not None else run.state


def _vma_id(vma: Any) -> Tuple[Any, ...]:
    """What a VMA was read as: the struct, its range, what backs it (file and
    offset, or anon_vma), its flags, its mm and lock state (not
    ``vm_refcnt``: readers -- page faults -- move it)."""
    return (vma.address, vma.start, vma.end, vma.pgoff, vma.flags, vma.file, getattr(vma, "anon_vma", None),
            getattr(vma, "mm", None), getattr(vma, "lock_seq", None), getattr(vma, "detached", None))


def decode_swap_entry_value(v: int) -> Tuple[int, int]:
    """A shmem page-cache value entry (``xa_mk_value(swp_entry.val)``):
    swp_entry_t keeps the type in the top 5 bits (``SWP_TYPE_SHIFT`` =
    BITS_PER_XA_VALUE - MAX_SWAPFILES_SHIFT = 63 - 5)."""
    val = v >> 1
    return val >> 58, val & ((1 << 58) - 1)


PageCache = Callable[[object, int], Optional[Tuple[str, int]]]


def page_cache_lookup(prog: drgn.Program, struct_page_size: int, vmemmap: int) -> PageCache:
    """``page_cache(vma, index)`` over ``vm_file->f_mapping->i_pages``."""
    from drgn.helpers.linux.xarray import xa_is_value, xa_load

    mappings: Dict[int, drgn.Object] = {}

    def lookup(vma: Any, index: int) -> Optional[Tuple[str, int]]:
        try:
            i_pages = mappings.get(vma.file)
            if i_pages is None:
                f = drgn.Object(prog, "struct file *", vma.file)
                i_pages = mappings[vma.file] = f.f_mapping.i_pages.address_of_()
            entry = xa_load(i_pages, index)
            v = entry.value_()
            if not v:
                return None
            if xa_is_value(entry):
                return "swap", v
            # a folio's head page covers several indexes: find our page
            page = v
            try:
                folio = drgn.Object(prog, "struct page *", v)
                head_index = int(folio.index)
                if index > head_index:
                    page = v + (index - head_index) * struct_page_size
            except (LookupError, drgn.FaultError, AttributeError):
                pass
            pfn = (page - vmemmap) // struct_page_size
            return "page", pfn << 12
        except (LookupError, drgn.FaultError, ValueError, AttributeError):
            return None

    return lookup


def user_reader_for(task_reader: Any, task: Any, kernel_walker: PageTableWalker,
                    read_phys: Callable[[int, int], bytes], *, live: bool) -> UserReader:
    """A :class:`UserReader` for ``task`` (a :class:`kcoretool.kernel.task.RawTask`
    with an mm): its page tables from ``mm->pgd`` (translated through the
    kernel's), its VMAs found by address (:class:`kcoretool.kernel.task.MmView`);
    live, VMAs are looked up afresh for every read and each read is
    validated (:meth:`UserReader.read`)."""
    from kcoretool.errors import KcoreToolError
    from kcoretool.kernel.task import MmView, user_constants

    r, t = task_reader, task
    raw_mm = r.read_mm(t.mm)
    if raw_mm is None:
        raise KcoreToolError(f"pid {t.pid}: its mm_struct {t.mm:#x} is unreadable")
    view = MmView(r, raw_mm, r.gate_vma(raw_mm))
    tr = kernel_walker.translate(raw_mm.pgd)
    if tr is None:
        raise KcoreToolError(f"pid {t.pid}: its page-table root {raw_mm.pgd:#x} is not mapped")
    walker = PageTableWalker(read_phys, tr.phys, levels=kernel_walker.levels, sme_mask=kernel_walker.sme_mask)
    consts = user_constants(r.prog)
    return UserReader(
        view, walker, read_phys,
        page_cache=page_cache_lookup(r.prog, consts["page_size"], consts["vmemmap"]),
        zero_pfns=(consts["zero_pfn"], consts["huge_zero_pfn"]),
        nr_swapfiles=consts["nr_swapfiles"],
        live=view if live else None,
        missing_state="unreadable" if live else "excluded",
    )
