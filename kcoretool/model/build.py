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
from typing import Callable, Dict, List, Optional, Tuple

import drgn

from kcoretool.kernel.layout import Layout, detect_layout, has_symbol
from kcoretool.kernel.vmalloc import (
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
    RawBlock,
    Symbolizer,
    VmallocReader,
    vm_flag_names,
)
from kcoretool.kernel.walk import DEFAULT_LIMIT, WalkLog
from kcoretool.model.vmalloc import Area, FreeHole, VmallocModel, VmapBlock, VmStruct
from kcoretool.x86_64 import START_KERNEL_MAP

__all__ = (
    "EXEC_CALLERS",
    "from_program",
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


def _vm_kind(flags: int, start: int, mod_lo: int, mod_hi: int, caller_name: Optional[str],
             sparse: bool) -> str:
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
    if mod_lo <= start < mod_hi or (caller_name is not None and caller_name in EXEC_CALLERS):
        return "exec"
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
            gc.enable()


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
    reader = VmallocReader(prog, layout)
    ps = reader.page_size()
    vstart, vend, _how = reader.vmalloc_range()
    mstart, mend = reader.modules_range()
    # Anything in the kernel-image half above __START_KERNEL_map is module
    # space on x86_64: vmap areas never live in the image itself.
    exec_lo = min(mstart, START_KERNEL_MAP)
    exec_hi = mend

    raw_blocks: List[RawBlock] = reader.blocks(log, limit) if blocks else []
    block_by_va: Dict[int, RawBlock] = {b.va: b for b in raw_blocks}

    sym = Symbolizer(prog) if symbolize else None
    legacy = layout.va_flags == "legacy"
    vmap_ram = layout.va_flags == "vmap_ram"
    node_ids = layout.va_flags_node_id
    sparse = layout.vm_sparse
    allow_huge = layout.vm_allow_huge
    vm_size, unpack_vm, vix = reader.vm_unpacker()
    I_ADDR, I_SIZE, I_FLAGS, I_PAGES, I_NR, I_PHYS, I_CALLER = (
        vix["addr"], vix["size"], vix["flags"], vix["pages"], vix["nr_pages"],
        vix["phys_addr"], vix["caller"],
    )
    I_ORDER = vix.get("page_order")
    I_REQ = vix.get("requested_size")
    read = prog.read
    FaultError = drgn.FaultError
    names_cache: Dict[int, Tuple[int, Tuple[str, ...]]] = {}
    caller_cache: Dict[int, Tuple[int, Optional[str], Optional[str]]] = {}
    size_intern: Dict[int, int] = {}

    def make_area(r: tuple, lazy_flag: bool) -> Area:
        # r is (vmap_area address, start, end, vm, flags, node): RawArea order
        address, start, end, vmp, flags, node = r
        vm = None
        block = None
        fnode = None
        if node_ids and flags:
            v = (flags >> 8) & 0xFF
            fnode = v - 1 if v else None
        if lazy_flag:
            kind = "lazy"
        elif legacy and flags is not None and flags & (VM_LAZY_FREE | VM_LAZY_FREEING):
            kind = "lazy"
            lazy_flag = True
        elif vmp:
            try:
                v = unpack_vm(read(vmp, vm_size))
            except FaultError:
                log.warn(f"vmap_area {address:#x}: vm_struct {vmp:#x} is unreadable")
                v = None
            if v is None:
                kind = "other"
            else:
                # Per distinct caller: symbolise once, and share one int
                # object for the caller, its text and name across areas.
                try:
                    caller, text, cname = caller_cache[v[I_CALLER]]
                except KeyError:
                    caller = v[I_CALLER]
                    text = sym(caller) if sym is not None else None
                    cname = text.split("+", 1)[0] if text else None
                    caller_cache[caller] = (caller, text, cname)
                try:
                    fl, names = names_cache[v[I_FLAGS]]
                except KeyError:
                    fl = v[I_FLAGS]
                    names_cache[fl] = (fl, vm_flag_names(fl, allow_huge, sparse))
                    names = names_cache[fl][1]
                size = v[I_SIZE]
                size = size_intern.setdefault(size, size)
                a = v[I_ADDR]
                vm = VmStruct(
                    vmp, start if a == start else a, size, fl, names, v[I_NR],
                    v[I_ORDER] if I_ORDER is not None else None, v[I_PHYS], caller, text,
                    v[I_REQ] if I_REQ is not None else None, v[I_PAGES],
                )
                kind = _vm_kind(fl, start, exec_lo, exec_hi, cname, sparse)
        else:
            b = block_by_va.get(address)
            if b is not None:
                kind = "vmap_block"
                block = b.address
            elif vmap_ram:
                f = (flags or 0) & VMAP_FLAGS_MASK
                if f == VMAP_RAM | VMAP_BLOCK:
                    kind = "vmap_block"
                    if blocks:
                        log.warn(f"vmap block area {start:#x} is not in the block index")
                elif f == VMAP_RAM:
                    kind = "vm_map_ram"
                else:
                    kind = "other"  # being set up or torn down
            else:
                # 5.4-6.2: vm == NULL means vm_map_ram (own area) or a block.
                kind = "vm_map_ram"
        return Area(start, end, kind, lazy_flag, flags, node, fnode, vm, block, address)

    walk_order: List[Area] = []
    lazy_list: List[Area] = []
    block_areas: Dict[int, Area] = {}
    append = walk_order.append
    for walk in reader.busy_walks(log, limit):
        for r in walk:
            a = make_area(r, False)
            append(a)
            if a.block is not None:
                block_areas[a.address] = a
            elif a.lazy:
                lazy_list.append(a)  # <= 5.3: flagged lazy inside the busy list
        if len(walk_order) >= limit:
            if len(walk_order) > limit:
                del walk_order[limit:]
            break
    if legacy:
        busy = [a for a in walk_order if not a.lazy]
        busy.sort(key=_start_key)
    elif _is_sorted(walk_order):
        busy = walk_order  # <= 6.8: vmap_area_list is address-sorted; share it
    else:
        busy = sorted(walk_order, key=_start_key)
    _check_areas(busy, log, ps)

    if lazy and layout.lazy not in ("busy", "none"):
        for r in reader.lazy_tuples(log, limit):
            lazy_list.append(make_area(r, True))
    pooled = []
    if lazy:
        for r in reader.pooled_tuples(log, limit):
            a = make_area(r, True)
            a.kind = "pooled"
            a.lazy = False
            pooled.append(a)

    holes: Optional[List[FreeHole]] = None
    if free and layout.free_list:
        holes = [FreeHole(s, e) for s, e in reader.free_areas(log, limit)]

    free_cpu: Dict[int, int] = {}
    if raw_blocks and not layout.block_cpu:
        free_cpu = reader.block_free_list_cpus(log)
    model_blocks = [
        _make_block(prog, b, block_areas.get(b.va), free_cpu, ps, log, page_tables)
        for b in raw_blocks
    ]
    model_blocks.sort(key=_start_key)

    try:
        release = prog["UTS_RELEASE"].string_().decode()
    except (KeyError, LookupError, drgn.FaultError, AttributeError):
        release = None

    return VmallocModel(
        layout=layout,
        release=release,
        page_size=ps,
        vmalloc_start=vstart,
        vmalloc_end=vend,
        modules_start=mstart,
        modules_end=mend,
        areas=busy,
        walk_order=walk_order,
        lazy=lazy_list,
        pooled=pooled,
        blocks=model_blocks,
        holes=holes,
        lazy_nr=reader.lazy_nr(),
        lazy_max_pages=reader.lazy_max_pages(),
        warnings=log.summary(),
        numa=has_symbol(prog, "node_data"),
    )


def _start_key(a):
    return a.start


def _is_sorted(areas: List[Area]) -> bool:
    prev = -1
    for a in areas:
        if a.start < prev:
            return False
        prev = a.start
    return True


def _check_areas(areas: List[Area], log: WalkLog, ps: int) -> None:
    prev_end = 0
    for a in areas:
        if a.start >= a.end or a.start % ps or a.end % ps:
            log.warn(f"vmap_area {a.address:#x}: bad range {a.start:#x}-{a.end:#x}")
        if a.start < prev_end:
            log.warn(f"vmap_area {a.address:#x}: overlaps the previous area at {a.start:#x}")
        prev_end = max(prev_end, a.end)


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


def _mapped_pages(prog: drgn.Program, start: int, first: int, last: int, ps: int) -> Optional[List[bool]]:
    try:
        from drgn.helpers.linux.mm import follow_phys

        mm = prog["init_mm"].address_of_()
    except (KeyError, LookupError, ImportError):
        return None
    out = []
    for i in range(first, last):
        try:
            follow_phys(mm, start + i * ps)
            out.append(True)
        except drgn.FaultError:
            out.append(False)
        except (ValueError, NotImplementedError, LookupError):
            return None
    return out


def _make_block(
    prog: drgn.Program,
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
        try:
            start, end = prog.read_u64(b.va), prog.read_u64(b.va + 8)
        except drgn.FaultError:
            start = end = 0
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
            mapped = _mapped_pages(prog, start, 0, top, ps) if page_tables else None
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
    from drgn.helpers.linux.mm import page_to_phys

    n = min(vm.nr_pages, limit)
    if not n or not vm.pages_array:
        return []
    raw = prog.read(vm.pages_array, 8 * n)
    page_t = prog.type("struct page *")
    out = []
    for i in range(n):
        p = int.from_bytes(raw[8 * i:8 * i + 8], "little")
        out.append(page_to_phys(drgn.Object(prog, page_t, p)).value_())
    return out


def vm_numa_counts(prog: drgn.Program) -> Callable[[VmStruct], Dict[int, int]]:
    """
    A function mapping a vm_struct to ``{node: pages}`` the way vmallocinfo's
    ``show_numa_info()`` counts (stepping by ``1 << page_order``). The node
    of each page comes from the node spans in ``node_data[]``.
    """
    from drgn.helpers.linux.mm import page_to_pfn
    from drgn.helpers.linux.nodemask import for_each_online_node

    spans = []
    for nid in for_each_online_node(prog):
        pgdat = prog["node_data"][nid]
        s = pgdat.node_start_pfn.value_()
        spans.append((s, s + pgdat.node_spanned_pages.value_(), nid))
    spans.sort()
    page_t = prog.type("struct page *")

    def counts(vm: VmStruct) -> Dict[int, int]:
        out: Dict[int, int] = {}
        if not vm.nr_pages or not vm.pages_array or vm.flags & VM_UNINITIALIZED:
            return out
        step = 1 << (vm.page_order or 0)
        raw = prog.read(vm.pages_array, 8 * vm.nr_pages)
        for i in range(0, vm.nr_pages, step):
            p = int.from_bytes(raw[8 * i:8 * i + 8], "little")
            pfn = page_to_pfn(drgn.Object(prog, page_t, p)).value_()
            for s, e, nid in spans:
                if s <= pfn < e:
                    out[nid] = out.get(nid, 0) + step
                    break
        return dict(sorted(out.items()))

    return counts
