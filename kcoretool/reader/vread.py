"""
Reading vmalloc memory
----------------------

:class:`VmallocReader` reads kernel virtual memory the way the kernel's
``vread_iter()`` (:linux:`mm/vmalloc.c`, 6.4+) *means* to: data for the
pages of vmalloc areas, large vm_map_ram areas and the used pages of vmap
blocks; zeros for holes, guard pages, unused or dirty block pages, ioremap
and sparse areas -- with a state for every page saying which.

Which pages hold data is decided by the model (area kind, guard page, the
block's used ranges) and the page tables, never by the kernel's block-offset
arithmetic: 6.1's vread() zero-fills every vm_map_ram area, and 6.4+'s
vmap_ram_vread_iter() copies from the start of the first used run, so every
piece not at the start of its block reads back the wrong page through
/proc/kcore.  Here each page is translated by the page tables and its
physical page read -- from a vmcore's physical segments, or live through
/proc/kcore's direct-map RAM segments.

On a live kernel an area can be freed or remapped while it is read.  Like
``read_kcore_iter()`` (fs/proc/kcore.c, 6.4+), each chunk is read
optimistically and then checked; unlike it, the check is a revalidation of
the area and its page-table translation rather than a fault-in, the number
of attempts is bounded (the kernel loop can spin forever when a source page
faults, as 6.13-rc did on execmem text), and pages whose area went away are
reported as ``raced`` instead of being filled from whatever took its place.

What this cannot see (issue 27): vfree() clears the area's PTEs, then frees
its pages at once (the kernel's TLB flush waits for the lazy purge), and
vmalloc has no generation count a lockless reader could check.  A read is
caught by the page-table re-walk -- unless, between the walk and the
re-walk, the area is freed, purged, and its range handed out again with
the same frame at the same page: on 6.9+ a node's pool gives a purged
vmap_area back for the next allocation of its size class, vm_struct and
pages array come from LIFO slabs, and vfree() frees pages in order while
the page allocator hands them out in reverse -- so a 1-page area can get its
frame back, as can the middle page of an odd-sized one (read alone: in a
whole-area read the other pages moved, and the re-walk sees them).  The
bytes read in between may then be the frame's previous or interim content.
Not closed here; the kernel's own vread_iter() (/proc/kcore's vmalloc
segment) holds the busy lock while it copies and could serve as a
cross-check for plain vmalloc areas.
"""

from __future__ import annotations

import bisect
import time
from typing import Any, Callable, Iterator, List, Optional, Protocol, Tuple

from kcoretool.errors import AddressError
from kcoretool.model.area import Area
from kcoretool.model.vmalloc import VmallocModel
from kcoretool.reader.pagetable import PageTableWalker
from kcoretool.reader.report import PageRun, ReadReport, check_range

__all__ = ("VmallocReader", "CHUNK", "MAX_ATTEMPTS")

#: Largest piece read and held in memory at once.
CHUNK = 1 << 20
#: Reads of one chunk before its pages are declared raced.
MAX_ATTEMPTS = 4
#: Sleep before each retry (seconds): let the writer finish its update.
BACKOFF = (0.0005, 0.002, 0.01)

_ZEROS = bytes(CHUNK)


class Sink(Protocol):
    """Where read bytes go: a binary file, a BytesIO, a hashing wrapper."""

    def write(self, data: bytes, /) -> Any: ...


#: ``(run, bytes, or None for zeros)``: what one step of a read yields.
Piece = Tuple[PageRun, Optional[bytes]]
#: ``(vaddr, size, [(vaddr, phys or None, size)])``: translations a live read relied on.
Seen = Tuple[int, int, List[Tuple[int, Optional[int], int]]]


def _write_zeros(sink: Sink, n: int) -> None:
    while n > 0:
        k = min(n, CHUNK)
        sink.write(_ZEROS[:k])
        n -= k


class VmallocReader:
    """Read kernel virtual memory with per-page provenance.

    :param model: a :class:`kcoretool.model.VmallocModel` snapshot.
    :param read_phys: ``read_phys(addr, size) -> bytes``; raises
        :class:`~kcoretool.errors.AddressError` for memory the source lacks.
    :param walker: translates with the kernel's page tables.
    :param revalidate: live kernels only: ``revalidate(area)`` re-reads the
        area from the kernel and returns it (or None if it is gone).
    :param force_io: read ioremap areas (device memory) too.
    :param sparse: read the present pages of VM_SPARSE areas.
    """

    def __init__(
        self,
        model: VmallocModel,
        read_phys: Callable[[int, int], bytes],
        walker: PageTableWalker,
        *,
        revalidate: Optional[Callable[[Area], Optional[Area]]] = None,
        force_io: bool = False,
        sparse: bool = False,
        missing_state: str = "excluded",
    ) -> None:
        self.model = model
        self.read_phys = read_phys
        self.walker = walker
        self.revalidate = revalidate
        self.force_io = force_io
        self.sparse = sparse
        #: what a physical page the source cannot give is: "excluded" from a
        #: dump, "unreadable" live
        self.missing_state = missing_state
        self.page_size = model.page_size
        self._seen: Optional[List[Seen]] = None
        spans = sorted(list(model.areas) + list(model.lazy), key=lambda a: a.start)
        self._spans = spans
        self._starts = [a.start for a in spans]
        # Where vmap areas live; other kernel addresses (direct map, kernel
        # image, vmemmap) are read by plain translation.
        self._ranges = sorted({(model.vmalloc_start, model.vmalloc_end),
                               (model.modules_start, model.modules_end)})

    # -- the walk over areas (vread_iter) ------------------------------------

    def read(self, addr: int, size: int, sink: Sink) -> ReadReport:
        """Read [addr, addr+size) into ``sink`` (anything with ``write``)."""
        check_range(addr, size)
        report = ReadReport(addr, size, "pagetable")
        end = addr + size
        pos = addr
        while pos < end:
            area = self._area_at(pos)
            if area is None and not self._in_vmap_ranges(pos):
                # Not vmalloc space: the page tables alone decide.
                n = min(end, self._next_range_start(pos)) - pos
                for run, data in self._mapped(None, pos, pos + n, "unmapped"):
                    self._emit(run, data, sink, report)
                pos += n
                continue
            if area is None:
                nxt = min(self._next_start(pos), self._range_end(pos))
                n = min(end, nxt) - pos
                _write_zeros(sink, n)
                report.add(PageRun(pos, n, "hole"))
                pos += n
                continue
            hi = min(end, area.end)
            self._read_area(area, pos, hi, sink, report)
            pos = hi
        return report

    def read_area(self, area: Area, sink: Sink) -> ReadReport:
        """All of one area, guard page included."""
        return self.read(area.start, area.end - area.start, sink)

    def _area_at(self, addr: int) -> Optional[Area]:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self._spans[i].end:
            return self._spans[i]
        return None

    def _in_vmap_ranges(self, addr: int) -> bool:
        return any(lo <= addr < hi for lo, hi in self._ranges)

    def _range_end(self, addr: int) -> int:
        return next((hi for lo, hi in self._ranges if lo <= addr < hi), 1 << 64)

    def _next_range_start(self, addr: int) -> int:
        return min((lo for lo, _ in self._ranges if lo > addr), default=1 << 64)

    def _next_start(self, addr: int) -> int:
        i = bisect.bisect_right(self._starts, addr)
        return self._starts[i] if i < len(self._starts) else 1 << 64

    # -- one area ------------------------------------------------------------

    def _read_area(self, area: Area, lo: int, hi: int, sink: Sink, report: ReadReport) -> None:
        for chunk_lo in range(lo, hi, CHUNK):
            chunk_hi = min(hi, chunk_lo + CHUNK)
            if self.revalidate is None:
                for run, data in self._plan_and_read(area, chunk_lo, chunk_hi):
                    self._emit(run, data, sink, report)
                continue
            now = self._read_chunk_live(area, chunk_lo, chunk_hi, sink, report)
            if now is None:  # gone: the rest of the span raced
                n = hi - chunk_hi
                if n:
                    _write_zeros(sink, n)
                    report.add(PageRun(chunk_hi, n, "raced"))
                return
            area = now

    def _read_chunk_live(self, area: Area, lo: int, hi: int, sink: Sink, report: ReadReport) -> Optional[Area]:
        """Optimistic read, then revalidate; retry a bounded number of times.
        Returns the area as last seen, or None if it is gone."""
        walker = self.walker
        revalidate = self.revalidate
        assert revalidate is not None
        for attempt in range(MAX_ATTEMPTS):
            walker.invalidate()
            self._seen = []  # the translations the read relied on
            try:
                pieces = list(self._plan_and_read(area, lo, hi))
                seen = self._seen
            finally:
                self._seen = None
            if not seen:
                # Nothing was read from memory (lazy area, guard page, ...):
                # zeros stay zeros whatever the kernel did meanwhile.
                for run, data in pieces:
                    self._emit(run, data, sink, report)
                return area
            current = revalidate(area)
            walker.invalidate()
            # Same area, same vm_struct, and every page still maps to the
            # physical page it was read from.
            if (current is not None and _identity(current) == _identity(area)
                    and all(list(walker.runs(v, n)) == runs for v, n, runs in seen)):
                for run, data in pieces:
                    self._emit(run, data, sink, report)
                return area
            report.retries += 1
            if current is None or not (current.start <= lo and hi <= current.end):
                break
            area = current  # re-resolve: same range, new contents
            if attempt < len(BACKOFF):
                time.sleep(BACKOFF[attempt])
        _write_zeros(sink, hi - lo)
        report.add(PageRun(lo, hi - lo, "raced", area=area.start))
        return None

    def _emit(self, run: PageRun, data: Optional[bytes], sink: Sink, report: ReadReport) -> None:
        if data is None:
            _write_zeros(sink, run.size)
        else:
            sink.write(data)
        report.add(run)

    # -- what each page of an area should be ---------------------------------

    def _plan_and_read(self, area: Area, lo: int, hi: int) -> Iterator[Piece]:
        """Yield (run, bytes or None for zeros) for [lo, hi) inside ``area``."""
        ps = self.page_size
        a0 = area.start
        if getattr(area, "lazy", False):
            yield PageRun(lo, hi - lo, "lazy", area=a0), None
            return
        vm = area.vm
        if area.kind == "vmap_block":
            yield from self._block(area, lo, hi)
            return
        if vm is None:
            # vm_map_ram area of its own (VMAP_RAM without VMAP_BLOCK): read
            # it like a vmalloc area (vmap_ram_vread_iter -> aligned_vread_iter).
            yield from self._mapped(area, lo, hi, "unmapped")
            return
        usable_end = vm.data_end(ps)
        data_end = min(hi, usable_end)
        if lo < data_end:
            kind = area.kind
            if kind == "uninitialised":
                yield PageRun(lo, data_end - lo, "uninitialised", area=a0), None
            elif kind == "ioremap" and not self.force_io:
                yield PageRun(lo, data_end - lo, "ioremap", area=a0), None
            elif kind == "sparse":
                if self.sparse:
                    yield from self._mapped(area, lo, data_end, "sparse")
                else:
                    yield PageRun(lo, data_end - lo, "sparse-skipped", area=a0), None
            else:
                yield from self._mapped(area, lo, data_end, "unmapped")
        if max(lo, usable_end) < hi:
            g = max(lo, usable_end)
            yield PageRun(g, hi - g, "guard", area=a0), None

    def _block(self, area: Area, lo: int, hi: int) -> Iterator[Piece]:
        """A vmap block: only its used pages hold vm_map_ram data.  Decided
        per page from the block's used ranges (used_map on 6.3+), never from
        the run-start arithmetic of vmap_ram_vread_iter()."""
        ps = self.page_size
        block = self.model.block_of(area)
        if block is None or block.used is None:
            # No record of which pages are live: the page tables are the
            # oracle (vb_free() unmaps freed pages at once).
            yield from self._mapped(area, lo, hi, "block-unused")
            return
        first_free = block.bits - block.free
        pos = lo
        while pos < hi:
            idx = (pos - area.start) // ps
            in_used = next(((a, b) for a, b in block.used if a <= idx < b), None)
            if in_used is not None:
                stop = min(hi, area.start + in_used[1] * ps)
                yield from self._mapped(area, pos, stop, "unmapped")
            else:
                nxt_used = min((a for a, _ in block.used if a > idx), default=block.bits)
                if idx < first_free:  # handed out once, freed since
                    stop_idx, state = min(nxt_used, first_free), "block-dirty"
                else:  # never handed out
                    stop_idx, state = nxt_used, "block-unused"
                stop = min(hi, area.start + stop_idx * ps)
                yield PageRun(pos, stop - pos, state, area=area.start), None
            pos = stop

    def _mapped(self, area: Optional[Area], lo: int, hi: int, unmapped_state: str) -> Iterator[Piece]:
        """aligned_vread_iter(): present pages are read, the rest is zeros."""
        runs = list(self.walker.runs(lo, hi - lo))
        if self._seen is not None:
            self._seen.append((lo, hi - lo, runs))
        for v, phys, n in runs:
            if phys is None:
                yield PageRun(v, n, unmapped_state, area=_start(area)), None
                continue
            yield from self._physical(area, v, phys, n)

    def _physical(self, area: Optional[Area], v: int, phys: int, n: int) -> Iterator[Piece]:
        try:
            yield PageRun(v, n, "data", phys=phys, area=_start(area)), self.read_phys(phys, n)
            return
        except AddressError:
            pass
        # Some of the run is missing: find which pages, one at a time.
        ps = self.page_size
        off = 0
        while off < n:
            k = min(n - off, ps - ((phys + off) % ps))
            try:
                data = self.read_phys(phys + off, k)
                yield PageRun(v + off, k, "data", phys=phys + off, area=_start(area)), data
            except AddressError as e:
                yield PageRun(v + off, k, e.state or self.missing_state, area=_start(area)), None
            off += k


def _start(area: Optional[Area]) -> Optional[int]:
    return None if area is None else area.start


def _identity(area: Area) -> Tuple[Any, ...]:
    """What must not change while an area is read."""
    vm = area.vm
    vm_id = None if vm is None else (vm.address, vm.addr, vm.size, vm.flags, vm.caller, vm.nr_pages,
                                      vm.pages_array)
    return (area.start, area.end, area.kind, getattr(area, "lazy", False), area.vmap_area, vm_id)
