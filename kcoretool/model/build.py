# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Building the vmalloc model
--------------------------

:func:`from_program` reads a :class:`drgn.Program` (live, a vmcore, or one
the user already has open in a drgn session) into a
:class:`~kcoretool.model.vmalloc.VmallocModel`.
"""

from __future__ import annotations

import gc
import heapq
import operator
from itertools import chain, islice
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple, Union

import drgn

from kcoretool.kernel.layout import Layout, detect_layout
from kcoretool.kernel.symbolize import Symbolizer
from kcoretool.kernel.vmalloc import RawBlock, VmallocWalker, numa_page_counts, page_physaddrs
from kcoretool.kernel.vmflags import (
    VM_ALLOC,
    VM_DMA_COHERENT,
    VM_IOREMAP,
    VM_LAZY_FREE,
    VM_LAZY_FREEING,
    VM_MAP,
    VM_SPARSE,
    VM_UNINITIALIZED,
    VM_USERMAP,
    VMAP_BLOCK,
    VMAP_FLAGS_MASK,
    VMAP_RAM,
    vm_flag_names,
    vm_struct_flag_names,
)
from kcoretool.kernel.walk import DEFAULT_LIMIT, WalkLog
from kcoretool.model.area import ROW_AT, Area, FreeHole, VmapBlock, VmStruct, row_area
from kcoretool.model.packed import BIT, KIND_CODE, RECORD_FIELDS, PackedAreaTable
from kcoretool.model.vmalloc import VmallocModel
from kcoretool.x86_64 import START_KERNEL_MAP

__all__ = (
    "EXEC_CALLERS",
    "from_program",
    "revalidator",
    "vm_numa_counts",
    "vm_page_physaddrs",
)

#: Caller symbols that allocate executable memory (module text, BPF JIT,
#: kprobes/ftrace trampolines, execmem). Areas in the module range are exec
#: whatever their caller.
EXEC_CALLERS = frozenset(
    {
        "module_alloc",
        "execmem_alloc",
        "execmem_vmalloc",
        "execmem_cache_populate",
        "execmem_cache_alloc",
        "__execmem_cache_alloc",
        "bpf_jit_alloc_exec",
        "bpf_jit_binary_alloc",
        "bpf_prog_pack_alloc",
        "alloc_new_pack",
        "alloc_insn_page",
        "alloc_tramp",
        "arch_ftrace_trampoline",
    }
)


#: The kinds an executable allocation takes precedence over (the rule is in
#: _area_maker's make_record: in the module range, or an EXEC_CALLERS caller).
_EXEC_OVERRIDES = ("vmalloc", "vmap", "other")


def _flags_kind(flags: int, sparse: bool) -> str:
    """The kind a vm_struct's flags give, before the exec rule."""
    if flags & VM_UNINITIALIZED:
        return "uninitialised"
    if flags & VM_IOREMAP:
        return "ioremap"
    if sparse and flags & VM_SPARSE:
        return "sparse"
    if flags & VM_DMA_COHERENT:
        return "dma-coherent"
    if flags & VM_USERMAP:
        return "user-mapped"
    if flags & VM_ALLOC:
        return "vmalloc"
    if flags & VM_MAP:
        return "vmap"
    return "other"


def from_program(
    prog: drgn.Program,
    *,
    layout: Optional[Layout] = None,
    limit: int = DEFAULT_LIMIT,
    blocks: bool = True,
    lazy: bool = True,
    free: bool = True,
    symbolize: bool = True,
    page_tables: bool = True,
    emit_warnings: bool = False,
) -> VmallocModel:
    """
    Snapshot the vmalloc state of ``prog``.

    Every walk is bounded by ``limit`` nodes and survives corrupt data: the
    problems are in ``model.warnings`` (and, with ``emit_warnings``, issued
    as :class:`kcoretool.kernel.walk.WalkWarning`). The library never prints.
    At most ``limit`` busy areas are kept, the lowest addresses (on 6.9+
    across all the nodes' lists), with a warning.

    :param blocks: read vmap blocks (needed to tell blocks from vm_map_ram
        areas on kernels before 6.3).
    :param page_tables: on kernels without ``vmap_block.used_map`` (< 6.3),
        ask the page tables which block pages are mapped when the counters
        cannot tell.
    """
    # Building allocates millions of small acyclic objects; the cyclic GC
    # would rescan them over and over for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _from_program(
            prog, layout, limit, blocks, lazy, free, symbolize, page_tables, emit_warnings
        )
    finally:
        if gc_was_enabled:
            _age_young_objects()
            gc.enable()


def _age_young_objects() -> None:
    """
    Move every object the cyclic GC tracks into its oldest generation
    without scanning it.  Objects made while the GC is off all wait in the
    youngest generation, and the first collection after ``gc.enable()``
    would walk every one of them (0.5 s for a million areas) only to find
    no garbage; in the oldest generation they are looked at again only by
    a full collection.  ``freeze()`` + ``unfreeze()`` is the way CPython
    offers to do that (skipped if the program froze objects itself).
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def _from_program(
    prog: drgn.Program,
    layout: Optional[Layout],
    limit: int,
    blocks: bool,
    lazy: bool,
    free: bool,
    symbolize: bool,
    page_tables: bool,
    emit_warnings: bool,
) -> VmallocModel:
    log = WalkLog(emit=emit_warnings)
    if layout is None:
        layout = detect_layout(prog)
    reader = VmallocWalker(prog, layout)
    ps = reader.page_size()
    vstart, vend, _how = reader.vmalloc_range()
    mstart, mend = reader.modules_range()

    raw_blocks: List[RawBlock] = reader.blocks(log, limit) if blocks else []
    busy, make_record = _area_maker(reader, log, Symbolizer(prog) if symbolize else None,
                                    {b.va: b.address for b in raw_blocks}, blocks, mend)
    make_area = _objects(busy, make_record)

    walk_index, lazy_list, block_areas = _busy_areas(reader, busy, make_record, log, limit, ps)
    if lazy and layout.lazy not in ("busy", "none"):
        lazy_list += [make_area(r + (None,), True) for r in reader.lazy_tuples(log, limit)]
    pooled = _pooled_areas(reader, make_area, log, limit) if lazy else []

    holes: Optional[List[FreeHole]] = None
    if free and layout.free_list:
        holes = [FreeHole(s, e) for s, e in reader.free_areas(log, limit)]

    free_cpu: Dict[int, int] = {}
    if raw_blocks and not layout.block_cpu:
        free_cpu = reader.block_free_list_cpus(log)
    model_blocks = [
        _make_block(reader, b, block_areas.get(b.va), free_cpu, ps, log, page_tables)
        for b in raw_blocks
    ]
    model_blocks.sort(key=_start_key)
    release = reader.release()

    return VmallocModel(
        layout=layout,
        release=release,
        page_size=ps,
        vmalloc_start=vstart,
        vmalloc_end=vend,
        modules_start=mstart,
        modules_end=mend,
        areas=None,
        walk_order=None,
        area_table=busy,
        walk_index=walk_index,
        lazy=lazy_list,
        pooled=pooled,
        blocks=model_blocks,
        holes=holes,
        lazy_nr=reader.lazy_nr(),
        lazy_max_pages=reader.lazy_max_pages(),
        warnings=log.summary(),
        numa=layout.numa,
    )


class MakeRecord(Protocol):
    def __call__(self, r: Tuple[Any, ...], lazy: bool = False) -> Tuple[int, ...]: ...


class MakeArea(Protocol):
    def __call__(self, r: Tuple[Any, ...], lazy: bool = False) -> Area: ...


def _objects(table: PackedAreaTable, make_record: MakeRecord) -> MakeArea:
    """``make_area(raw, lazy)``: the :class:`Area` of ``make_record``'s record."""
    area = row_area
    decode = table.decode_record

    def make_area(r: Tuple[Any, ...], lazy: bool = False) -> Area:
        return area(decode(make_record(r, lazy)))

    return make_area


def _area_maker(
    reader: VmallocWalker,
    log: WalkLog,
    sym: Optional[Symbolizer],
    block_of_va: Dict[int, int],
    blocks_read: bool,
    exec_hi: int,
) -> Tuple[PackedAreaTable, MakeRecord]:
    """
    An empty table and ``make_record(raw, lazy)``: one area as a
    :data:`~kcoretool.model.packed.AREA_RECORD` of that table from a
    :class:`RawArea` tuple, reading its vm_struct.  Each distinct caller is
    symbolised once, and each distinct flags value named once (into the
    table's names and symbols).

    :param block_of_va: ``{vmap_area address: vmap_block address}``.
    :param exec_hi: end of the module range: a vm_struct area from
        __START_KERNEL_map up to it is executable memory (vmap areas never
        live in the kernel image itself).
    """
    layout = reader.layout
    legacy = layout.va_flags == "legacy"
    vmap_ram = layout.va_flags == "vmap_ram"
    node_id = layout.flags_node_id if layout.va_flags_node_id else None
    sparse = layout.vm_sparse
    allow_huge = layout.vm_allow_huge
    names: Dict[int, Tuple[str, ...]] = {}
    symbols: Dict[int, Optional[str]] = {}
    table = PackedAreaTable(names, symbols)
    # flags -> (kind code outside the module range with a caller that is
    # not exec, whether exec overrides that kind)
    flags_cache: Dict[int, Tuple[int, bool]] = {}
    # caller -> whether its symbol is an exec allocator
    caller_cache: Dict[int, bool] = {}
    flags_get = flags_cache.get
    caller_get = caller_cache.get
    code = KIND_CODE
    LAZY, OTHER, EXEC = code["lazy"], code["other"], code["exec"]
    VMAP_BLOCK_KIND, VM_MAP_RAM = code["vmap_block"], code["vm_map_ram"]
    lazy_mask = VM_LAZY_FREE | VM_LAZY_FREEING

    def make_record(r: Tuple[Any, ...], lazy: bool = False) -> Tuple[int, ...]:
        address, start, end, vmp, flags, node, vm = r  # VmallocWalker.with_vm's
        bits = 0
        if flags is not None:
            bits = HAS_FLAGS
        else:
            flags = 0
        if node is not None:
            bits |= HAS_NODE
        else:
            node = 0
        fnode = node_id(flags) if node_id is not None and flags else None
        if fnode is not None:
            bits |= HAS_NODE_ID
        else:
            fnode = 0
        block = 0
        if lazy:
            kind = LAZY
            bits |= IS_LAZY
        elif legacy and flags & lazy_mask:
            kind = LAZY
            bits |= IS_LAZY
        elif vmp:
            if vm is None:  # unreadable
                kind = OTHER
            else:
                addr, size, fl, pages_array, order, nr, phys, caller, requested = vm
                exec_caller = caller_get(caller)
                if exec_caller is None:
                    text = sym(caller) if sym is not None else None
                    cname = text.split("+", 1)[0] if text else None
                    symbols[caller] = text
                    exec_caller = caller_cache[caller] = cname is not None and cname in EXEC_CALLERS
                fc = flags_get(fl)
                if fc is None:
                    k = _flags_kind(fl, sparse)
                    names[fl] = vm_flag_names(fl, vm_struct_flag_names(allow_huge, sparse))
                    fc = flags_cache[fl] = (code[k], k in _EXEC_OVERRIDES)
                kind, overridable = fc
                # the exec rule: an exec allocator's area, or one in the module range
                if overridable and (exec_caller or START_KERNEL_MAP <= start < exec_hi):
                    kind = EXEC
                bits |= HAS_VM
                if order is not None:
                    bits |= HAS_ORDER
                else:
                    order = 0
                if requested is not None:
                    bits |= HAS_REQ
                else:
                    requested = 0
                return (start, end, kind, flags, node, fnode, 0, address, vmp, addr, size, fl, nr, order, phys,
                        caller, requested, pages_array, bits)
        elif address in block_of_va:
            kind, block = VMAP_BLOCK_KIND, block_of_va[address]
            bits |= HAS_BLOCK
        elif vmap_ram:
            f = flags & VMAP_FLAGS_MASK
            if f == VMAP_RAM | VMAP_BLOCK:
                kind = VMAP_BLOCK_KIND
                if blocks_read:
                    log.warn(f"vmap block area {start:#x} is not in the block index")
            elif f == VMAP_RAM:
                kind = VM_MAP_RAM
            else:
                kind = OTHER  # being set up or torn down
        else:
            # 5.4-6.2: vm == NULL means vm_map_ram (own area) or a block.
            kind = VM_MAP_RAM
        return (start, end, kind, flags, node, fnode, block, address, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, bits)

    return table, make_record


def _busy_areas(
    reader: VmallocWalker, table: PackedAreaTable, make_record: MakeRecord, log: WalkLog, limit: int, ps: int
) -> Tuple[Optional[List[int]], List[Area], Dict[int, Area]]:
    """Fill ``table`` with the busy areas, sorted by start; return ``(the
    walk order as indices into busy + lazy if it is not the table's own,
    lazy areas in the busy list (<= 5.3), {vmap_area address: area} of the
    vmap blocks)``.  Each area is checked for a bad range and overlaps
    (:func:`_check_areas`)."""
    walks = list(reader.busy_walks(log, limit))
    # Each busy list is sorted by address (link_va() inserts in order): on
    # 6.9+ merging the nodes' lists as they are walked gives every area in
    # address order without sorting a million of them afterwards.
    merged = len(walks) > 1
    walked: Iterator[Tuple[Any, ...]] = heapq.merge(*walks, key=_RAW_START) if merged else chain(*walks)
    table.extend(map(make_record, reader.with_vm(islice(walked, limit), log)))
    if len(table) >= limit and next(walked, None) is not None:
        # (one list past the limit has said so itself as it was asked for more)
        log.warn(f"busy areas: stopped after {limit} (limit); the lowest addresses are kept")
    area = row_area
    block_at, va_at, lazy_at_ = ROW_AT["vmap_block"], ROW_AT["vmap_area"], ROW_AT["lazy"]
    lazy_list: List[Area] = []
    lazy_at: List[int] = []
    block_areas: Dict[int, Area] = {}
    for i in table.flagged(HAS_BLOCK | IS_LAZY):
        r = table.row(i)  # before sort(): row i is the i-th record walked
        if r[block_at] is not None:
            block_areas[r[va_at]] = area(r)
        elif r[lazy_at_]:
            # <= 5.3: flagged lazy inside the busy list
            lazy_list.append(area(r))
            lazy_at.append(i)
    n = len(table)
    legacy_lazy = reader.layout.va_flags == "legacy" and lazy_at
    if legacy_lazy:
        gone = set(lazy_at)
        table.sort([i for i in range(n) if i not in gone])
    elif merged:
        # the walker stops a list whose starts do not grow: merged, they
        # are in order
        table.walked_by_node()
    table.index = _check_areas(table, log, ps)
    walk_index: Optional[List[int]] = None
    if legacy_lazy:
        busy_pos = table.walk_index()
        assert busy_pos is not None
        lazy_pos = {i: len(table) + j for j, i in enumerate(lazy_at)}
        walk_index = [busy_pos[i] if i not in lazy_pos else lazy_pos[i] for i in range(n)]
    return walk_index, lazy_list, block_areas


def _pooled_areas(reader: VmallocWalker, make_area: MakeArea, log: WalkLog, limit: int) -> List[Area]:
    """6.9+: purged areas a node keeps for reuse: neither busy nor lazy."""
    pooled = []
    for r in reader.pooled_tuples(log, limit):
        a = make_area(r + (None,), True)
        a.kind = "pooled"
        a.lazy = False
        pooled.append(a)
    return pooled


def revalidator(prog: drgn.Program, model: VmallocModel) -> Callable[[Area], Optional[Area]]:
    """
    ``revalidate(area)``: the area as the kernel has it now -- re-read and
    rebuilt the way :func:`from_program` builds it (flags, flag names,
    caller, kind) -- or None if its ``vmap_area`` no longer describes the
    same range and vm_struct.  For live reads (:mod:`kcoretool.reader.vread`).
    """
    reader = VmallocWalker(prog, model.layout)
    va_at, block_at = ROW_AT["vmap_area"], ROW_AT["vmap_block"]
    block_of_va = {r[va_at]: r[block_at] for r in model.rows() if r[block_at] is not None}
    log = WalkLog()
    make_area = _objects(*_area_maker(reader, log, Symbolizer(prog), block_of_va, False, model.modules_end))

    def revalidate(area: Area) -> Optional[Area]:
        raw = reader.read_va(area.vmap_area, area.node)
        if raw is None or (raw.start, raw.end) != (area.start, area.end):
            return None
        if raw.vm != (area.vm.address if area.vm is not None else 0):
            return None
        if area.kind in ("lazy", "pooled"):
            return area  # no longer on a busy list: nothing more to compare
        now = make_area(next(reader.with_vm([tuple(raw)], log)), False)
        return area if now == area else now

    return revalidate


_RAW_START = operator.itemgetter(1)  # RawArea.start
# make_record writes records by position, in this order
assert RECORD_FIELDS == ("start", "end", "kind", "va_flags", "node", "flags_node_id", "vmap_block", "vmap_area",
                         "vm_struct", "vm_addr", "vm_size", "vm_flags", "nr_pages", "page_order", "phys_addr",
                         "caller", "requested_size", "pages_array", "bits"), RECORD_FIELDS
HAS_FLAGS, HAS_NODE, HAS_NODE_ID, HAS_BLOCK = (BIT[n] for n in ("va_flags", "node", "flags_node_id", "vmap_block"))
HAS_VM, HAS_ORDER, HAS_REQ, IS_LAZY = (BIT[n] for n in ("vm_struct", "page_order", "requested_size", "lazy"))


def _start_key(a: Union[Area, VmapBlock]) -> int:
    return a.start


def _check_areas(table: PackedAreaTable, log: WalkLog, ps: int) -> Tuple[Sequence[int], Sequence[int]]:
    """Warn of bad ranges and overlaps; return the start and end columns
    (the model's index)."""
    prev_end = 0
    mask = ps - 1 if ps & (ps - 1) == 0 else None
    starts, ends = table.column("start"), table.column("end")
    if (mask is not None and table.low_bits_clear(mask)
            and all(map(operator.lt, starts, ends))
            and all(map(operator.le, ends, islice(starts, 1, None)))):
        return starts, ends  # all well, found without a Python step per area
    for i, (start, end) in enumerate(zip(starts, ends)):
        bad = start >= end or ((start | end) & mask if mask is not None else start % ps or end % ps)
        if bad or start < prev_end:
            address = table.row(i)[ROW_AT["vmap_area"]]
            if bad:
                log.warn(f"vmap_area {address:#x}: bad range {start:#x}-{end:#x}")
            if start < prev_end:
                log.warn(f"vmap_area {address:#x}: overlaps the previous area at {start:#x}")
        if end > prev_end:
            prev_end = end
    return starts, ends


def _runs(bitmap: int, nbits: int) -> Tuple[Tuple[int, int], ...]:
    out = []
    i = 0
    while bitmap and i < nbits:
        low = (bitmap & -bitmap).bit_length() - 1  # first set bit
        rest = ~(bitmap >> low)
        run = (rest & -rest).bit_length() - 1  # length of the run of ones
        out.append((low, low + run))
        bitmap &= ~(((1 << run) - 1) << low)
        i = low + run
    return tuple(out)


def _make_block(
    reader: VmallocWalker,
    b: RawBlock,
    area: Optional[Area],
    free_cpu: Dict[int, int],
    ps: int,
    log: WalkLog,
    page_tables: bool,
) -> VmapBlock:
    notes: List[str] = []
    if area is not None:
        start, end = area.start, area.end
    else:
        va = reader.read_va(b.va)
        start, end = (va.start, va.end) if va is not None else (0, 0)
        notes.append("its vmap_area is not among the busy areas")
        log.warn(f"vmap_block {b.address:#x}: va {b.va:#x} is not a busy area")
    bits = b.bits if b.bits is not None else max((end - start) // ps, 0)
    if b.cpu is not None:
        cpu, cpu_source = b.cpu, "vmap_block.cpu"
    elif b.address in free_cpu:
        cpu, cpu_source = free_cpu[b.address], "free list"
    else:
        cpu, cpu_source = None, None
        notes.append(
            "CPU unknown: this kernel has no vmap_block.cpu and the block is on no "
            "CPU's free list (it is full)"
        )
    if b.xa_index is not None and b.cpu is None:
        notes.append(
            f"indexed in vmap_block_queue[{b.xa_index}].vmap_blocks (an address hash, "
            "not the allocating CPU)"
        )

    used: Optional[Tuple[Tuple[int, int], ...]]
    if b.used_map is not None:
        used = _runs(b.used_map, bits)
        used_source = "used_map"
        n_used = sum(y - x for x, y in used)
        if n_used + b.free + b.dirty != bits:
            notes.append(
                f"used_map has {n_used} pages but free+dirty is {b.free + b.dirty} of {bits}"
            )
    else:
        # < 6.3: vb_alloc() bumps from the start, so [0, bits - free) was handed
        # out; "dirty" of those pages were freed again, somewhere in
        # [dirty_min, dirty_max) unless vm_unmap_aliases() reset that range.
        top = bits - b.free
        if not 0 <= top <= bits:
            used, used_source = None, "unknown"
            notes.append(f"free={b.free} is out of range for a {bits}-page block")
        elif b.dirty == 0:
            used, used_source = (((0, top),) if top else ()), "derived"
        elif b.dirty_max > b.dirty_min and b.dirty_max - b.dirty_min == b.dirty:
            parts = [(0, b.dirty_min), (b.dirty_max, top)]
            used = tuple((x, y) for x, y in parts if x < y)
            used_source = "derived"
        else:
            used, used_source = None, "unknown"
            mapped = reader.mapped_pages(start, 0, top) if page_tables else None
            if mapped is not None:
                bm = 0
                for i, m in enumerate(mapped):
                    if m:
                        bm |= 1 << i
                used, used_source = _runs(bm, top), "page_tables"
                notes.append(
                    "used pages read from the page tables (vb_free unmaps at once); "
                    "these are mapped pages, not the power-of-two units vb_alloc hands out"
                )
            else:
                notes.append(
                    f"no used_map (< 6.3): {b.dirty} of the first {top} pages were freed "
                    "and which ones is unknown without page tables"
                )
    return VmapBlock(
        start, end, b.address, cpu, cpu_source, b.free, b.dirty, b.dirty_min,
        b.dirty_max, bits, used, used_source, tuple(notes),
    )


def vm_page_physaddrs(prog: drgn.Program, vm: VmStruct, limit: int = 1 << 22) -> List[int]:
    """
    Physical address of each page in ``vm.pages[]`` (on demand; one read for
    the array). Huge mappings list every base page.
    """
    return page_physaddrs(prog, vm.pages_array, min(vm.nr_pages, limit))


def vm_numa_counts(prog: drgn.Program) -> Callable[[VmStruct], Dict[int, int]]:
    """
    A function mapping a vm_struct to ``{node: pages}`` the way vmallocinfo's
    ``show_numa_info()`` counts (stepping by ``1 << page_order``). The node
    of each page comes from the node spans in ``node_data[]``.
    """
    counts = numa_page_counts(prog)

    def of(vm: VmStruct) -> Dict[int, int]:
        return counts(vm.pages_array, vm.nr_pages, vm.page_order, vm.flags)

    return of
