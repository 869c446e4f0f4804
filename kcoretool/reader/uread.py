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

A live mm changes while it is read: each chunk is read, then its VMA (by a
fresh maple-tree lookup) and every page-table entry it used are read again;
a mismatch re-reads the chunk, a bounded number of times.
"""

from __future__ import annotations

import time
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

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
#: pages read between revalidations (live)
CHUNK_PAGES = 64
MAX_ATTEMPTS = 4
#: live reads up to this size are checked whole: the mm's sequence count must
#: not move between their first and last chunk, or a VMA unmapped and mapped
#: again alike (same address, same slab object) between two chunks would
#: splice two mappings' pages into one read.  Bigger reads stream, each
#: chunk checked on its own.
WHOLE_READ_LIMIT = 16 << 20
BACKOFF = (0.0005, 0.002, 0.01)


def decode_swap_entry(v: int) -> Tuple[int, int]:
    """(type, offset) of an x86_64 swap-format entry (pgtable_64.h:
    type in bits 59-63, offset stored inverted below it)."""
    return v >> 59, ((((~v) << 5) & ((1 << 64) - 1)) >> 14)


class UserReader:
    """Read one task's user memory.

    :param vmas: a :class:`kcoretool.model.task.VmaList` of the task.
    :param walker: a :class:`PageTableWalker` rooted at the mm's PGD.
    :param read_phys: physical reads; AddressError for what the source lacks.
    :param page_cache: ``page_cache(vma, index) -> ("page", phys) |
        ("swap", entry) | None``: the file's page-cache entry.
    :param zero_pfns: PFNs of the zero page and the huge zero page.
    :param nr_swapfiles: swap types below this are real swap devices.
    :param revalidate: live only: ``revalidate(addr) -> vma or None`` (a
        fresh lookup of the VMA now covering ``addr``).
    :param mm_seq: live only: the mm's ``mm_lock_seq`` now (6.4+; it moves on
        every mmap write-unlock), so an munmap + mmap of the same range --
        same VMA slot, same page frames, as the kernel's LIFO caches make
        likely -- is still seen as a change.
    """

    def __init__(self, vmas: Any, walker: PageTableWalker, read_phys: Callable[[int, int], bytes], *,
                 page_cache: Optional[Callable[[object, int], Optional[Tuple[str, int]]]] = None,
                 zero_pfns: Tuple[int, ...] = (), nr_swapfiles: Optional[int] = None,
                 revalidate: Optional[Callable[[int], Optional[object]]] = None,
                 mm_seq: Optional[Callable[[], Optional[int]]] = None,
                 missing_state: str = "excluded") -> None:
        self.vmas = vmas
        self.walker = walker
        self.read_phys = read_phys
        self.page_cache = page_cache
        self.zero_pfns = frozenset(p for p in zero_pfns if p is not None)
        self.nr_swapfiles = nr_swapfiles
        self.revalidate = revalidate
        self.mm_seq = mm_seq
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
            vma = vmas.find(pos)
            if vma is None:
                nxt = next((v.start for v in vmas.vmas if v.start > pos), 1 << 64)
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

    def _pieces(self, lo: int, hi: int) -> List[Tuple[PageRun, Optional[bytes], object]]:
        out = []
        for run, vma in self.plan(lo, hi):
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
        report = ReadReport(addr, size, "pagetable")
        pieces: Iterable[Tuple[PageRun, Optional[bytes], object]]
        if self.revalidate is not None and self.mm_seq is not None and size <= WHOLE_READ_LIMIT:
            pieces = self._live_whole(addr, addr + size, report)
        else:
            pieces = self._chunks(addr, addr + size, report)
        for run, data, _ in pieces:
            sink.write(data if data is not None else bytes(run.size))
            report.add(run)
        return report

    def _chunks(self, lo: int, end: int, report: ReadReport) -> Iterator[Tuple[PageRun, Optional[bytes], object]]:
        step = CHUNK_PAGES * PAGE
        while lo < end:
            hi = min(end, (lo & ~(step - 1)) + step)
            yield from (self._pieces(lo, hi) if self.revalidate is None else self._live(lo, hi, report))
            lo = hi

    def _live_whole(self, lo: int, hi: int, report: ReadReport) -> List[Tuple[PageRun, Optional[bytes], object]]:
        """The chunks of one read, each checked, and the mm unchanged from the
        first to the last (bounded retries; then the read is ``raced``)."""
        assert self.mm_seq is not None
        step = CHUNK_PAGES * PAGE
        if lo // step == (hi - 1) // step:
            return self._live(lo, hi, report)  # one chunk: _live checks it whole
        for attempt in range(MAX_ATTEMPTS):
            seq = self.mm_seq()
            pieces = list(self._chunks(lo, hi, report))
            if seq is None or self.mm_seq() == seq:
                return pieces
            self._retry(report, attempt)
        return [(PageRun(lo, hi - lo, "raced"), None, None)]

    def _live(self, lo: int, hi: int, report: ReadReport) -> List[Tuple[PageRun, Optional[bytes], object]]:
        """Read, then check the VMAs and page-table entries are unchanged."""
        assert self.revalidate is not None
        for attempt in range(MAX_ATTEMPTS):
            self.walker.invalidate()
            seq = self.mm_seq() if self.mm_seq is not None else None
            pieces = self._pieces(lo, hi)
            self.walker.invalidate()
            ok = seq is None or self.mm_seq is None or self.mm_seq() == seq
            for run, _, vma in (pieces if ok else ()):
                now = self.revalidate(run.vaddr)
                if _vma_id(now) != _vma_id(vma):
                    ok = False
                    break
                if run.state in ("data", "zero-page") or vma is not None:
                    state, phys, _, _ = self.classify(vma, run.vaddr) if vma is not None else ("no-vma", None, 0, None)
                    if state != _plan_state(run) or (run.phys is not None and phys != run.phys):
                        ok = False
                        break
            if ok:
                return pieces
            self._retry(report, attempt)
        return [(PageRun(lo, hi - lo, "raced"), None, None)]

    def _retry(self, report: ReadReport, attempt: int) -> None:
        """After a failed check: count it, re-read the VMAs, back off."""
        report.retries += 1
        refresh = getattr(self.vmas, "refresh", None)
        if refresh is not None:
            self.vmas = refresh()
        if attempt < len(BACKOFF):
            time.sleep(BACKOFF[attempt])


def _plan_state(run: PageRun) -> str:
    # a data page the dump or the machine would not give is still "data" to the plan
    return "data" if run.state in ("excluded", "unreadable") and run.phys is not None else run.state


def _vma_id(vma: Any) -> Optional[Tuple[int, int, int, int, int]]:
    if vma is None:
        return None
    return (vma.address, vma.start, vma.end, vma.flags, vma.file)


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
    kernel's), its VMAs; live, a page whose VMA changed under the read is
    revalidated and the VMA list re-read (bounded by the reader's retries)."""
    from kcoretool.errors import KcoreToolError
    from kcoretool.kernel.task import user_constants
    from kcoretool.model.task import build_vma_list, make_vma

    r, t = task_reader, task
    vmas = build_vma_list(r, t)
    raw_mm = r.read_mm(t.mm)
    if raw_mm is None:
        raise KcoreToolError(f"pid {t.pid}: its mm_struct {t.mm:#x} is unreadable")
    tr = kernel_walker.translate(raw_mm.pgd)
    if tr is None:
        raise KcoreToolError(f"pid {t.pid}: its page-table root {raw_mm.pgd:#x} is not mapped")
    walker = PageTableWalker(read_phys, tr.phys, levels=kernel_walker.levels, sme_mask=kernel_walker.sme_mask)
    consts = user_constants(r.prog)
    revalidate = None
    source: Any = vmas
    if live:
        def revalidate(addr: int) -> Any:
            now = r.read_mm(t.mm)
            if now is None:
                return None
            raw = r.vma_at(now, addr)
            return None if raw is None else make_vma(r, raw, now, t.fs_root)

        class _Fresh:
            """The VMA list, re-read when a revalidation fails."""

            def __init__(self, lst: Any) -> None:
                self.vmas = lst.vmas
                self._lst = lst

            def find(self, addr: int) -> Any:
                return self._lst.find(addr)

            def refresh(self) -> Any:
                return _Fresh(build_vma_list(r, t))

        source = _Fresh(vmas)
    return UserReader(
        source, walker, read_phys,
        page_cache=page_cache_lookup(r.prog, consts["page_size"], consts["vmemmap"]),
        zero_pfns=(consts["zero_pfn"], consts["huge_zero_pfn"]),
        nr_swapfiles=consts["nr_swapfiles"], revalidate=revalidate,
        mm_seq=(lambda: getattr(r.read_mm(t.mm), "mm_lock_seq", None)) if live else None,
        missing_state="unreadable" if live else "excluded",
    )
