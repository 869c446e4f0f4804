# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The executable-memory model
---------------------------

Everything the kernel has handed out as executable (or module) memory, at
sub-page granularity where the allocator has it: module regions, each BPF
program inside its ``bpf_prog_pack`` and the pack's free and unattributed
chunks, BPF trampolines and dispatchers, kprobe slot pages, ftrace
trampolines and the execmem ROX cache. :func:`exec_from_program` builds it
from a :class:`drgn.Program` and the :class:`~kcoretool.model.VmallocModel`
(each allocation is placed in its containing vmap area).
"""

from __future__ import annotations

import bisect
import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Tuple

from kcoretool._args import as_address
from kcoretool.model.area import check_kinds
from kcoretool.model.record import Column, Field, Record
from kcoretool.model.vmalloc import VmallocModel

if TYPE_CHECKING:  # the builder's imports (drgn) load only when it runs
    import drgn

    from kcoretool.kernel.execmem import ExecLayout, ExecReader, RawBpfSym
    from kcoretool.kernel.walk import WalkLog


__all__ = ("EXEC_KINDS", "BpfPack", "BpfProg", "ExecModel", "ExecRegion", "exec_from_program")

#: ``kind`` of an :class:`ExecRegion`.
EXEC_KINDS = (
    "module-text",
    "module-rodata",
    "module-ro-after-init",
    "module-data",
    "module-init-text",
    "module-init-rodata",
    "module-init-data",
    "bpf-prog",
    "bpf-prog-pack",
    "bpf-trampoline",
    "bpf-dispatcher",
    "bpf-struct-ops",
    "bpf-other",
    "bpf-classic",
    "kprobe-insn",
    "kprobe-optinsn",
    "ftrace-trampoline",
    "execmem-cache",
    "unattributed",
    "free",
)


@dataclass(repr=False)
class ExecRegion(Record):
    """One executable (or module) allocation, or a free/unattributed run of
    a sub-allocator."""

    FIELDS = (
        Field("start", address=True, column=Column(0, "START", "hex")),
        Field("end", address=True, column=Column(1, "END", "hex")),
        Field("size", column=Column(2, "SIZE", "bytes", "right")),
        Field("kind", column=Column(3, "KIND")),
        Field("owner", column=Column(4, "OWNER")),
        Field("tag", presence="BPF programs", column=Column(5, "TAG")),
        Field("id", presence="BPF programs", column=Column(6, "ID", "int", "right")),
        Field("prog_type", presence="BPF programs"),
        Field("symbol"),
        Field("area", address=True, column=Column(7, "AREA", "hex")),
        Field("container", address=True),
        Field("alloc_start", address=True),
        Field("alloc_end", address=True),
        # what else the walk knows ("ops", "pending_free", ...): keys of its own
        Field("detail", nested="spread"),
    )

    start: int
    end: int
    kind: str
    #: module name, BPF program name, symbol or allocator ("bpf_prog_pack")
    owner: str
    #: start of the vmap area holding it (None if none does)
    area: Optional[int] = None
    #: BPF: tag (16 hex digits), id (0-less: None for subprograms), type
    tag: Optional[str] = None
    id: Optional[int] = None
    prog_type: Optional[str] = None
    #: the full kallsyms name where the kernel has one
    symbol: Optional[str] = None
    #: what the sub-allocator handed out, when it differs from [start, end)
    alloc_start: Optional[int] = None
    alloc_end: Optional[int] = None
    #: start of the bpf_prog_pack memory / ROX cache area holding it
    container: Optional[int] = None
    detail: Dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.end - self.start

    def object(self, prog: Any = None) -> Any:
        """The ``struct vmap_area *`` of the vmap area that holds the region
        (a :class:`drgn.Object` in ``prog``, default drgn's default program)."""
        from kcoretool.model.kobject import kernel_object

        return kernel_object(prog, "struct vmap_area *", self.area, "exec region")

    @property
    def alloc_size(self) -> int:
        """What the allocator handed out (the region itself where it says nothing more)."""
        if self.alloc_start is not None and self.alloc_end is not None:
            return self.alloc_end - self.alloc_start
        return self.end - self.start



@dataclass
class BpfProg:
    """A JIT'd BPF program: its code ``[start, start + size)`` inside the
    chunks ``[header, header + alloc_size)`` (``struct bpf_binary_header``)."""

    name: str
    symbol: str
    tag: Optional[str]
    id: Optional[int]
    prog_type: Optional[str]
    start: int
    size: int
    header: Optional[int]
    alloc_size: Optional[int]
    address: int  #: struct bpf_prog *

    def object(self, prog: Any = None) -> Any:
        """The ``struct bpf_prog *`` (default program: drgn's)."""
        from kcoretool.model.kobject import kernel_object

        return kernel_object(prog, "struct bpf_prog *", self.address, "BPF program")

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BpfPack:
    """A ``struct bpf_prog_pack``: ``size`` bytes at ``start`` in
    ``chunk_size`` chunks, one bit each in ``bitmap``."""

    address: int
    start: int
    size: int
    chunk_size: int
    #: the used-chunk bitmap as the kernel has it (little-endian longs)
    bitmap: bytes
    area: Optional[int]
    progs: List[BpfProg] = field(default_factory=list)
    #: other BPF images in the pack (trampolines, dispatchers): (start, end, name)
    images: List[Tuple[int, int, str]] = field(default_factory=list)
    #: used chunk runs [start, end) that nothing the kernel lists owns
    unattributed: List[Tuple[int, int]] = field(default_factory=list)

    def object(self, prog: Any = None) -> Any:
        """The ``struct bpf_prog_pack *`` (default program: drgn's)."""
        from kcoretool.model.kobject import kernel_object

        return kernel_object(prog, "struct bpf_prog_pack *", self.address, "BPF pack")

    @property
    def nchunks(self) -> int:
        return self.size // self.chunk_size

    def used_runs(self) -> List[Tuple[int, int]]:
        """Runs of used chunks as address ranges."""
        return self._runs(True)

    def free_runs(self) -> List[Tuple[int, int]]:
        return self._runs(False)

    def _runs(self, used: bool) -> List[Tuple[int, int]]:
        n = self.nchunks
        bits = int.from_bytes(self.bitmap, "little")
        if not used:
            bits = ~bits & ((1 << n) - 1)
        out = []
        i = 0
        while i < n:
            if not bits >> i:
                break
            low = (bits >> i) & -(bits >> i)  # lowest set bit at or after i
            i += low.bit_length() - 1
            rest = ~(bits >> i)
            j = i + ((rest & -rest).bit_length() - 1)
            j = min(j, n)
            out.append((self.start + i * self.chunk_size, self.start + j * self.chunk_size))
            i = j
        return out

    @property
    def used_chunks(self) -> int:
        return bin(int.from_bytes(self.bitmap, "little") & ((1 << self.nchunks) - 1)).count("1")

    @property
    def free_chunks(self) -> int:
        return self.nchunks - self.used_chunks

    @property
    def largest_free_run(self) -> int:
        """Bytes of the largest run of free chunks (what the next program can get)."""
        return max((b - a for a, b in self.free_runs()), default=0)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "address": self.address, "start": self.start, "end": self.start + self.size,
            "size": self.size, "chunk_size": self.chunk_size, "chunks": self.nchunks,
            "used_chunks": self.used_chunks, "free_chunks": self.free_chunks,
            "largest_free_run": self.largest_free_run, "area": self.area,
            "used_runs": [list(r) for r in self.used_runs()],
            "free_runs": [list(r) for r in self.free_runs()],
            "unattributed": [list(r) for r in self.unattributed],
            "images": [{"start": a, "end": b, "name": n} for a, b, n in self.images],
            "progs": [p.to_dict() for p in self.progs],
        }


@dataclass
class RoxCachePage:
    """One vmap area of the execmem ROX cache (``execmem_cache``, 6.14+ with
    ``CONFIG_ARCH_HAS_EXECMEM_ROX``): 2 MiB-aligned read-only executable
    memory that execmem_alloc() sub-allocates -- several modules' text back
    to back, kprobe and ftrace pages -- from its ``busy_areas`` and
    ``free_areas`` maple trees."""

    #: start of the vmap area
    start: int
    #: the busy sub-allocations and free ranges inside it, in address order
    #: (their ``kind`` is the owner's, ``unattributed`` or ``free``)
    ranges: List[ExecRegion] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(r.alloc_size for r in self.ranges if r.kind != "free")

    @property
    def free(self) -> int:
        return sum(r.alloc_size for r in self.ranges if r.kind == "free")

    @property
    def largest_free(self) -> int:
        return max((r.alloc_size for r in self.ranges if r.kind == "free"), default=0)

    def to_dict(self) -> Dict[str, Any]:
        return {"start": self.start, "used": self.used, "free": self.free, "largest_free": self.largest_free,
                "ranges": [r.to_dict() for r in self.ranges]}


class ExecModel:
    """Every executable allocation found, sorted by start; see :data:`EXEC_KINDS`."""

    def __init__(self, regions: List[ExecRegion], packs: List[BpfPack], layout: ExecLayout,
                 warnings: List[str], cache_areas: Optional[Dict[int, int]] = None) -> None:
        self.regions = sorted(regions, key=lambda r: (r.start, r.end))
        self.packs = packs
        #: execmem ROX cache: vmap area start -> busy sub-allocations in it
        self.cache_areas: Dict[int, int] = dict(cache_areas or {})
        self.layout = layout
        self.warnings = warnings
        self._starts = [r.start for r in self.regions]

    def find(self, addr: int) -> Optional[ExecRegion]:
        """The innermost region containing ``addr`` (a program before its
        pack's runs); ``addr`` as :meth:`VmallocModel.find` takes it."""
        if type(addr) is not int or not 0 <= addr < 1 << 64:
            addr = as_address(addr, "addr")
        i = bisect.bisect_right(self._starts, addr) - 1
        best = None
        # Regions do not nest, except ROX-cache sub-allocations; look back a little.
        for r in self.regions[max(0, i - 8): i + 1]:
            if r.start <= addr < r.end and (best is None or r.size < best.size):
                best = r
        return best

    def select(self, kinds: Optional[Iterable[str]] = None, owner: Optional[str] = None) -> Iterator[ExecRegion]:
        """Filter regions: kinds (any of :data:`EXEC_KINDS`), owner glob.

        :raises ArgumentError: an unknown kind, or ``kinds`` given as one string.
        """
        ks = check_kinds(kinds, EXEC_KINDS)
        for r in self.regions:
            if ks is not None and r.kind not in ks:
                continue
            if owner is not None and not (fnmatch.fnmatchcase(r.owner, owner)
                                          or (r.symbol and fnmatch.fnmatchcase(r.symbol, owner))):
                continue
            yield r

    def rox_cache(self) -> List[RoxCachePage]:
        """The execmem ROX cache's areas, each with what is inside it
        (empty on a kernel without the cache)."""
        pages: Dict[int, RoxCachePage] = {a: RoxCachePage(a) for a in sorted(self.cache_areas)}
        for r in self.regions:
            page = pages.get(r.detail.get("execmem_cache", -1))
            if page is not None:
                page.ranges.append(r)
        for page in pages.values():
            page.ranges.sort(key=lambda r: r.alloc_start if r.alloc_start is not None else r.start)
        return list(pages.values())

    def area_owners(self) -> Dict[int, str]:
        """vmap area start -> who owns it: the module name, ``bpf_prog_pack:
        N progs``, the trampoline or slot page's owner."""
        out: Dict[int, str] = {a: f"execmem_cache: {n} allocation{'s' if n != 1 else ''}"
                               for a, n in self.cache_areas.items()}
        for p in self.packs:
            if p.area is not None:
                out[p.area] = f"bpf_prog_pack: {len(p.progs)} prog{'s' if len(p.progs) != 1 else ''}"
        for r in self.regions:
            if r.area is None or r.area in out or r.kind in ("free", "unattributed"):
                continue
            out[r.area] = r.owner
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {
            "regions": [r.to_dict() for r in self.regions],
            "packs": [p.to_dict() for p in self.packs],
            "layout": {d["feature"]: d["value"] for d in self.layout.describe()},
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        return f"<ExecModel regions={len(self.regions)} packs={len(self.packs)} warnings={len(self.warnings)}>"


def _sym_kind(name: str) -> str:
    if name.startswith("bpf_trampoline_"):
        return "bpf-trampoline"
    if name.startswith("bpf_dispatcher_"):
        return "bpf-dispatcher"
    if name.startswith("bpf__"):
        return "bpf-struct-ops"
    return "bpf-other"


def _prog_name(sym: RawBpfSym) -> str:
    """What follows ``bpf_prog_<tag>_`` in the symbol (the BTF function name
    or aux->name), else aux->name, else the symbol."""
    prefix = f"bpf_prog_{sym.tag}_"
    if sym.tag and sym.name.startswith(prefix) and len(sym.name) > len(prefix):
        return sym.name[len(prefix):]
    return sym.prog_name or sym.name


def _area_of(vm: Optional[VmallocModel], addr: int) -> Optional[int]:
    if vm is None:
        return None
    a = vm.find(addr, include_lazy=False)
    return a.start if a is not None else None


def _subtract(runs: List[Tuple[int, int]], taken: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """``runs`` minus the (sorted) ``taken`` ranges."""
    out = []
    taken = sorted(taken)
    j = 0
    for lo, hi in runs:
        while j < len(taken) and taken[j][1] <= lo:
            j += 1
        k = j
        cur = lo
        while k < len(taken) and taken[k][0] < hi:
            a, b = taken[k]
            if a > cur:
                out.append((cur, a))
            cur = max(cur, b)
            k += 1
        if cur < hi:
            out.append((cur, hi))
    return out


def exec_from_program(prog: drgn.Program, vmalloc: Optional[VmallocModel] = None, *,
                      layout: Optional[ExecLayout] = None, limit: Optional[int] = None) -> ExecModel:
    """Snapshot the executable memory of ``prog``; ``vmalloc`` places each
    allocation in its vmap area (and gives the packs' sizes)."""
    from kcoretool.kernel.execmem import ExecReader
    from kcoretool.kernel.symbolize import Symbolizer
    from kcoretool.kernel.walk import DEFAULT_LIMIT, WalkLog

    if limit is None:
        limit = DEFAULT_LIMIT
    log = WalkLog()
    raw = ExecReader(prog, layout, limit)
    page_size = vmalloc.page_size if vmalloc is not None else 4096
    regions: List[ExecRegion] = []

    for m in raw.module_regions(log):
        regions.append(ExecRegion(m.start, m.start + m.size, m.kind, m.module, _area_of(vmalloc, m.start),
                                  detail={"module_state": m.state}))

    syms = raw.bpf_symbols(log)
    packs = _packs(raw, vmalloc, log)
    pack_starts = [p.start for p in packs]

    def pack_of(addr: int) -> Optional[BpfPack]:
        i = bisect.bisect_right(pack_starts, addr) - 1
        if i >= 0 and addr < packs[i].start + packs[i].size:
            return packs[i]
        return None

    taken: Dict[int, List[Tuple[int, int]]] = {p.start: [] for p in packs}
    by_start: Dict[int, ExecRegion] = {}
    for s in syms:
        pack = pack_of(s.start)
        if s.prog:
            prev = by_start.get(s.start)
            if prev is not None and prev.kind == "bpf-prog":
                # jit_subprogs(): the main program and func[0] share a start;
                # the one with an ID is the program.
                if prev.id is None and s.id is not None:
                    prev.detail.setdefault("aliases", []).append(prev.symbol)
                    prev.owner, prev.symbol, prev.id = _prog_name(s), s.name, s.id
                else:
                    prev.detail.setdefault("aliases", []).append(s.name)
                continue
            hdr_end = s.header + s.header_size if s.header is not None and s.header_size else None
            # Before 5.18 the ksym ends with the image's pages: the code is jited_len.
            end = s.start + s.jited_len if s.jited_len and s.start + s.jited_len <= s.end else s.end
            # hdr->size reads 0xcccccccc mid-JIT (the RO chunk still holds the
            # fill): trust it only when it covers the code and stays in the pack.
            if hdr_end is not None and not (end <= hdr_end and (pack is None or hdr_end <= pack.start + pack.size)):
                hdr_end = None
            r = ExecRegion(s.start, end, "bpf-prog", _prog_name(s), _area_of(vmalloc, s.start), s.tag, s.id,
                           s.prog_type, s.name, s.header if hdr_end else None, hdr_end,
                           pack.start if pack is not None else None, {"bpf_prog": s.prog})
            by_start[s.start] = r
            regions.append(r)
            if pack is not None:
                pack.progs.append(BpfProg(r.owner, s.name, s.tag, s.id, s.prog_type, s.start, end - s.start,
                                          r.alloc_start, (hdr_end - s.header) if hdr_end and s.header else None,
                                          s.prog))
                taken[pack.start].append((r.alloc_start or s.start, hdr_end or end))
        else:
            kind = _sym_kind(s.name)
            regions.append(ExecRegion(s.start, s.end, kind, s.name, _area_of(vmalloc, s.start), symbol=s.name,
                                      container=pack.start if pack is not None else None))
            if pack is not None:
                pack.images.append((s.start, s.end, s.name))
                taken[pack.start].append((s.start, s.end))

    # Classic BPF (seccomp, the boot-time PTP classifier) has no ID and no
    # symbol: found from its owners, it starts at its bpf_binary_header.
    for who, func, jited_len in raw.classic_bpf(log):
        hdr = raw.header_of(func)
        size = raw.header_size(hdr)
        if not size or size > (64 << 20) or not hdr <= func < func + jited_len <= hdr + size:
            log.warn(f"classic BPF {who} at {func:#x}: its JIT header does not hold it")
            continue
        pack = pack_of(hdr)
        name = f"{who} (classic BPF)"
        regions.append(ExecRegion(func, func + jited_len, "bpf-classic", name, _area_of(vmalloc, func),
                                  prog_type="classic", alloc_start=hdr, alloc_end=hdr + size,
                                  container=pack.start if pack is not None else None))
        if pack is not None:
            pack.images.append((hdr, hdr + size, name))
            taken[pack.start].append((hdr, hdr + size))

    for p in packs:
        # Chunk granularity: a partly used chunk belongs to its user.
        cs = p.chunk_size
        owned = [(a & ~(cs - 1), (b + cs - 1) & ~(cs - 1)) for a, b in taken[p.start]]
        p.unattributed = [piece for run in _subtract(p.used_runs(), owned) for piece in _images(raw, run, cs)]
        p.progs.sort(key=lambda x: x.start)
        for lo, hi in p.unattributed:
            regions.append(ExecRegion(lo, hi, "unattributed", "bpf_prog_pack", p.area, container=p.start))
        for lo, hi in p.free_runs():
            regions.append(ExecRegion(lo, hi, "free", "bpf_prog_pack", p.area, container=p.start))

    sym = Symbolizer(prog)

    def func_name(addr: int) -> Optional[str]:
        s = sym.symbol(addr)
        return s[0] if s is not None else None

    for t in raw.kprobe_pages(log, page_size) + raw.ftrace_trampolines(log, func_name) + \
            raw.dispatcher_rw_pages(log, page_size):
        regions.append(ExecRegion(t.start, t.start + t.size, t.kind, t.owner, _area_of(vmalloc, t.start),
                                  detail=dict(t.detail)))

    cache_areas: Dict[int, int] = {}
    regions.extend(_rox_cache(raw, vmalloc, regions, packs, log, cache_areas))
    return ExecModel(regions, packs, raw.layout, log.summary(), cache_areas)


def _images(raw: ExecReader, run: Tuple[int, int], chunk: int) -> List[Tuple[int, int]]:
    """Split a used run nobody owns at its ``bpf_binary_header``\\ s (each
    image starts with its chunk-rounded size: classic BPF filters, programs
    being freed); what does not parse stays one piece."""
    lo, hi = run
    out: List[Tuple[int, int]] = []
    while lo < hi and len(out) < 4096:
        size = raw.header_size(lo)
        if size is None or not size or size % chunk or size > hi - lo:
            break
        out.append((lo, lo + size))
        lo += size
    if lo < hi:
        out.append((lo, hi))
    return out


def _packs(raw: ExecReader, vmalloc: Optional[VmallocModel], log: WalkLog) -> List[BpfPack]:
    from kcoretool.kernel.execmem import BPF_PROG_CHUNK_SIZE

    out = []
    for rp in raw.packs(log):
        area = vmalloc.find(rp.ptr, include_lazy=False) if vmalloc is not None else None
        if area is not None and area.vm is not None:
            # BPF_PROG_PACK_SIZE differs by config and NUMA nodes: the pack is
            # its vm area without the guard page (reference §2.1).
            guard = 0 if area.vm.flags & 0x40 else vmalloc.page_size  # type: ignore[union-attr]
            size = area.vm.addr + area.vm.size - guard - rp.ptr
        else:
            size = 2 << 20
            log.warn(f"bpf_prog_pack {rp.address:#x}: no vm area at {rp.ptr:#x}; assuming 2 MiB")
        size -= size % BPF_PROG_CHUNK_SIZE
        bitmap = raw.pack_bitmap(rp, size // BPF_PROG_CHUNK_SIZE)
        if bitmap is None:
            log.warn(f"bpf_prog_pack {rp.address:#x}: bitmap unreadable")
            continue
        out.append(BpfPack(rp.address, rp.ptr, size, BPF_PROG_CHUNK_SIZE, bitmap,
                           area.start if area is not None else None))
    out.sort(key=lambda p: p.start)
    return out


def _rox_cache(raw: ExecReader, vmalloc: Optional[VmallocModel], regions: List[ExecRegion],
               packs: List[BpfPack], log: WalkLog, cache_areas: Dict[int, int]) -> List[ExecRegion]:
    """execmem ROX cache sub-allocations: each busy range attributed to the
    module text, kprobe page or ftrace trampoline that starts there, else
    unattributed; free ranges as free."""
    cache = raw.rox_cache(log)
    if cache is None:
        return []
    # bpf_prog_pack memory comes from execmem_alloc() too (7.x): a whole
    # pack is one busy range of the cache, its programs sub-allocated inside.
    pack_at = {p.start: p for p in packs}
    owners = {r.start: r for r in regions if r.container is None or r.container not in pack_at}
    out = []
    for lo, hi, pending in cache.busy:
        area = _area_of(vmalloc, lo)
        if area is not None:
            cache_areas[area] = cache_areas.get(area, 0) + 1
        detail: Dict[str, Any] = {"execmem_cache": area}
        if pending:
            detail["pending_free"] = True
        r = owners.get(lo)
        if r is not None:
            r.container = area
            r.alloc_start, r.alloc_end = lo, hi
            r.detail.update(detail)
        elif lo in pack_at:
            n = len(pack_at[lo].progs)
            out.append(ExecRegion(lo, hi, "bpf-prog-pack", f"bpf_prog_pack: {n} prog{'s' if n != 1 else ''}",
                                  area, container=area, detail=detail))
        else:
            out.append(ExecRegion(lo, hi, "unattributed", "execmem_cache", area, container=area, detail=detail))
    for lo, hi in cache.free:
        area = _area_of(vmalloc, lo)
        out.append(ExecRegion(lo, hi, "free", "execmem_cache", area, container=area, detail={"execmem_cache": area}))
    return out
