# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vmalloc layout detection
------------------------

What the kernel's vmalloc bookkeeping looks like in a given program,
detected from symbols and struct members -- never from version strings.
Each difference is decided in exactly one place below, with the kernel
commit that introduced it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from kcoretool.errors import LayoutError

if TYPE_CHECKING:
    import drgn

# drgn is imported where it is used: a Layout read back from a snapshot file
# (``vmalloc diff A.json B.json``) needs no drgn.

__all__ = (
    "Layout",
    "detect_layout",
    "has_member",
    "has_symbol",
    "require_members",
    "type_or_none",
)


def type_or_none(prog: drgn.Program, name: str) -> Optional[drgn.Type]:
    try:
        return prog.type(name)
    except LookupError:
        return None


def has_member(prog: drgn.Program, type_name: str, member: str) -> bool:
    t = type_or_none(prog, type_name)
    if t is None:
        return False
    try:
        return t.has_member(member)
    except TypeError:
        return False


def has_symbol(prog: drgn.Program, name: str) -> bool:
    """
    A variable or function the program's debug info knows. (Not ELF symbol
    lookups: ``prog.symbol()`` costs about a millisecond per call on a real
    kernel, and the DWARF we require has every name we probe.)
    """
    import drgn

    try:
        prog[name]
        return True
    except KeyError:
        return False
    except (drgn.ObjectAbsentError, LookupError, ValueError):
        return True


def require_members(prog: drgn.Program, layout: str, type_name: str, *members: str) -> None:
    """Raise :class:`~kcoretool.errors.LayoutError` naming the first of
    ``members`` that ``type_name`` lacks (or the type itself)."""
    t = type_or_none(prog, type_name)
    if t is None:
        raise LayoutError(f"the kernel's types have no {type_name}", layout=layout)
    for m in members:
        if not has_member(prog, type_name, m):
            raise LayoutError(f"{type_name} has no member {m}", layout=layout)


@dataclasses.dataclass(frozen=True)
class Layout:
    """
    The vmalloc layout of one kernel. Every field is decided by one probe in
    :func:`detect_layout`; :meth:`describe` returns the evidence and the
    kernel commit for each.
    """

    #: where busy areas live: ``"vmap_area_list"`` (<= 6.8) or ``"vmap_nodes"``.
    busy: str
    #: ``vmap_area.flags``: ``"legacy"`` (<= 5.3: VM_LAZY_FREE/VM_VM_AREA),
    #: ``"none"`` (5.4-6.2) or ``"vmap_ram"`` (6.3+: VMAP_RAM/VMAP_BLOCK).
    va_flags: str
    #: 6.9+: bits 8-15 of ``vmap_area.flags`` hold a vmap node id + 1.
    va_flags_node_id: bool
    #: name of the ``vmap_area`` member pointing at the ``vm_struct``.
    va_vm_member: str
    #: ``vmap_area.purge_list`` exists (<= 5.10): the llist node of a lazily
    #: freed area, sharing storage with ``vm``.
    va_purge_list: bool
    #: lazily freed areas: ``"busy"`` (<= 5.3, flagged in the busy list),
    #: ``"llist"`` (``vmap_purge_list``, 5.4-5.10), ``"list"``
    #: (``purge_vmap_area_list``, 5.11-6.8), ``"nodes"`` (6.9+) or ``"none"``.
    lazy: str
    #: vmap_block index: ``"global"`` (``vmap_blocks`` xarray, <= 6.3),
    #: ``"radix"`` (``vmap_block_tree``), ``"percpu"`` (6.4+) or ``"none"``.
    block_index: str
    #: the global block index (``vmap_blocks`` / ``vmap_block_tree``) is an
    #: xarray (4.20+); before, a radix tree kcoretool does not read.
    block_index_xarray: bool
    #: ``vmap_block.used_map`` exists (6.3+).
    block_used_map: bool
    #: ``vmap_block.cpu`` exists (6.10+).
    block_cpu: bool
    #: ``vm_struct.page_order`` exists (CONFIG_HAVE_ARCH_HUGE_VMALLOC).
    vm_page_order: bool
    #: ``vm_struct.requested_size`` exists (latest).
    vm_requested_size: bool
    #: bit 0x400 means VM_ALLOW_HUGE_VMAP (5.18+) rather than VM_NO_HUGE_VMAP.
    vm_allow_huge: bool
    #: VM_SPARSE (0x1000) exists and vmallocinfo prints "sparse" (6.9+).
    vm_sparse: bool
    #: ``vmap_node.pool[]`` exists (6.9+): purged areas kept for reuse.
    node_pools: bool
    #: ``free_vmap_area_list`` exists (free holes are enumerable).
    free_list: bool
    #: ``node_data`` exists (CONFIG_NUMA): vmallocinfo prints per-node counts.
    numa: bool
    #: vmallocinfo skips VM_UNINITIALIZED areas (coupled with requested_size).
    vmallocinfo_skips_uninitialized: bool
    #: a short human label ("6.9", "5.4-5.10", ...), for messages only.
    label: str
    #: (feature, value, evidence, commit) for each field.
    evidence: Tuple[Tuple[str, str, str, str], ...] = dataclasses.field(
        default=(), compare=False, repr=False
    )

    def describe(self) -> List[Dict[str, str]]:
        return [
            {"feature": f, "value": v, "evidence": e, "commit": c}
            for f, v, e, c in self.evidence
        ]

    def to_dict(self) -> Dict[str, object]:
        d = dataclasses.asdict(self)
        d["evidence"] = self.describe()
        return d

    def flags_node_id(self, flags: Optional[int]) -> Optional[int]:
        """6.9+: the vmap node a pooled area came from, which
        ``encode_vn_id()`` keeps in bits 8-15 of ``vmap_area.flags`` as id + 1."""
        if not self.va_flags_node_id or not flags:
            return None
        v = (flags >> 8) & 0xFF
        return v - 1 if v else None


def detect_layout(prog: drgn.Program) -> Layout:
    """Detect the vmalloc layout of ``prog`` from its symbols and types."""
    ev: List[Tuple[str, str, str, str]] = []
    va_t = "struct vmap_area"
    # What every layout since v2.6.28 has: a kernel without it is one
    # kcoretool does not know (said as such, never as a damaged dump).
    require_members(prog, "vmalloc", va_t, "va_start", "va_end")
    require_members(prog, "vmalloc", "struct vm_struct", "addr", "size", "flags", "caller")

    # d093602919ad ("mm: vmalloc: remove global vmap_area_root rb-tree") and
    # 55c49fee57af ("mm/vmalloc: remove vmap_area_list") (in v6.9)
    if has_symbol(prog, "vmap_nodes"):
        busy = "vmap_nodes"
    elif has_symbol(prog, "vmap_area_list"):
        busy = "vmap_area_list"
    else:
        raise LayoutError("neither vmap_nodes (6.9+) nor vmap_area_list holds the busy vmap areas",
                          layout="vmalloc")
    ev.append(
        ("busy", busy, "symbol vmap_nodes", 'd093602919ad ("mm: vmalloc: remove '
         'global vmap_area_root rb-tree"), 55c49fee57af (v6.9)')
    )

    # db64fe02258f (v2.6.28) introduced vmap_area.flags + purge_list;
    # 688fcbfc06e4 ("mm/vmalloc: modify struct vmap_area to reduce its size")
    # (in v5.4) removed flags; 869176a09606 ("mm/vmalloc.c: add flags to mark
    # vm_map_ram area") (in v6.3) added a new flags member.
    va_has_flags = has_member(prog, va_t, "flags")
    va_has_purge = has_member(prog, va_t, "purge_list")
    if va_has_flags and va_has_purge:
        va_flags = "legacy"
    elif va_has_flags:
        va_flags = "vmap_ram"
    else:
        va_flags = "none"
    ev.append(
        ("va_flags", va_flags, "members vmap_area.flags, vmap_area.purge_list",
         '688fcbfc06e4 (v5.4) removed; 869176a09606 ("mm/vmalloc.c: add flags to '
         'mark vm_map_ram area") (v6.3) re-added')
    )

    # The node id in bits 8-15 came with the per-node pools of the same v6.9
    # series ("mm: vmalloc: offload free_vmap_area_lock lock"; mainline hash
    # not verified here), so it is tied to vmap_nodes.
    va_flags_node_id = busy == "vmap_nodes" and va_flags == "vmap_ram"
    ev.append(
        ("va_flags_node_id", str(va_flags_node_id), "symbol vmap_nodes",
         '"mm: vmalloc: offload free_vmap_area_lock lock" (v6.9)')
    )

    # Before v3.10 the member was "private"; db64fe02258f era.
    va_vm_member = "vm" if has_member(prog, va_t, "vm") else "private"

    # The llist node of lazily freed areas until 96e2db456135 ("mm/vmalloc:
    # rework the drain logic") (v5.11) replaced it with a list_head.
    va_purge_list = va_has_purge

    # Lazy areas: <= 5.3 they stay in the busy list flagged VM_LAZY_FREE;
    # 688fcbfc06e4-era dd3b8353bae7 ("mm/vmalloc: do not keep unpurged areas
    # in the busy tree") (v5.4) moved them to the vmap_purge_list llist;
    # 96e2db456135 ("mm/vmalloc: rework the drain logic") (v5.11) made it
    # purge_vmap_area_list; v6.9 moved it into each vmap_node's lazy tree.
    if busy == "vmap_nodes":
        lazy = "nodes"
    elif va_flags == "legacy":
        lazy = "busy"
    elif has_symbol(prog, "purge_vmap_area_list"):
        lazy = "list"
    elif has_symbol(prog, "vmap_purge_list"):
        lazy = "llist"
    else:
        lazy = "none"
    ev.append(
        ("lazy", lazy, "symbols vmap_nodes, purge_vmap_area_list, vmap_purge_list",
         'dd3b8353bae7 (v5.4); 96e2db456135 ("mm/vmalloc: rework the drain '
         'logic") (v5.11); d093602919ad series (v6.9)')
    )

    # 062eacf57ad9 ("mm: vmalloc: remove a global vmap_blocks xarray") (in
    # v6.4) moved the index into per-CPU vmap_block_queue.vmap_blocks.
    if has_member(prog, "struct vmap_block_queue", "vmap_blocks"):
        block_index = "percpu"
    elif has_symbol(prog, "vmap_blocks"):
        block_index = "global"
    elif has_symbol(prog, "vmap_block_tree"):
        block_index = "radix"
    else:
        block_index = "none"
    ev.append(
        ("block_index", block_index,
         "member vmap_block_queue.vmap_blocks, symbols vmap_blocks, vmap_block_tree",
         '062eacf57ad9 ("mm: vmalloc: remove a global vmap_blocks xarray") (v6.4)')
    )

    # v4.20's XArray series made the radix tree an xarray underneath (struct
    # radix_tree_root is struct xarray); the older radix tree is not read.
    if block_index in ("global", "radix"):
        index_t = _variable_type(prog, "vmap_blocks" if block_index == "global" else "vmap_block_tree")
        block_index_xarray = index_t is None or index_t == "struct xarray"
    else:
        block_index_xarray = block_index == "percpu"
    ev.append(
        ("block_index_xarray", str(block_index_xarray), "type of vmap_blocks / vmap_block_tree",
         "the XArray series (v4.20; commit not verified here)")
    )

    # "mm/vmalloc.c: add used_map into vmap_block to track space of
    # vmap_block" (Baoquan He, in v6.3; mainline hash not verified here).
    block_used_map = has_member(prog, "struct vmap_block", "used_map")
    ev.append(
        ("block_used_map", str(block_used_map), "member vmap_block.used_map",
         '"mm/vmalloc.c: add used_map into vmap_block to track space of '
         'vmap_block" (v6.3)')
    )

    # "mm/vmalloc: fix vbq->free breakage" (Hailong Liu, 2024; absent in
    # 6.9.0, present in 6.12.19; mainline hash not verified here).
    block_cpu = has_member(prog, "struct vmap_block", "cpu")
    ev.append(
        ("block_cpu", str(block_cpu), "member vmap_block.cpu",
         '"mm/vmalloc: fix vbq->free breakage" (v6.10)')
    )

    # 121e6f3258fe ("mm/vmalloc: hugepage vmalloc mappings") (in v5.13)
    # added page_order under CONFIG_HAVE_ARCH_HUGE_VMALLOC.
    vm_page_order = has_member(prog, "struct vm_struct", "page_order")
    ev.append(
        ("vm_page_order", str(vm_page_order), "member vm_struct.page_order",
         '121e6f3258fe ("mm/vmalloc: hugepage vmalloc mappings") (v5.13)')
    )

    # vm_struct.requested_size: absent in 6.12.19, present in 7.1.3 (Kees
    # Cook's vrealloc sizing work; exact commit not verified here).
    vm_requested_size = has_member(prog, "struct vm_struct", "requested_size")
    ev.append(
        ("vm_requested_size", str(vm_requested_size), "member vm_struct.requested_size",
         "vrealloc sizing (after v6.12; commit not verified)")
    )

    # 559089e0a93d ("vmalloc: replace VM_NO_HUGE_VMAP with
    # VM_ALLOW_HUGE_VMAP") (in v5.18) added vmalloc_huge() in the same change.
    # Memory allocation profiling (v6.10) renamed it vmalloc_huge_noprof()
    # and made vmalloc_huge a macro; later kernels (Debian's 7.3) have only
    # vmalloc_huge_node_noprof() behind it, so look for any of the names.
    vm_allow_huge = any(has_symbol(prog, name) for name in
                        ("vmalloc_huge", "vmalloc_huge_noprof", "vmalloc_huge_node_noprof"))
    ev.append(
        ("vm_allow_huge", str(vm_allow_huge), "symbol vmalloc_huge, vmalloc_huge_noprof or vmalloc_huge_node_noprof",
         '559089e0a93d ("vmalloc: replace VM_NO_HUGE_VMAP with '
         'VM_ALLOW_HUGE_VMAP") (v5.18)')
    )

    # e6f798225a31 ("mm: Introduce VM_SPARSE kind and
    # vm_area_[un]map_pages().") (in v6.9) added vm_area_map_pages() with it.
    vm_sparse = has_symbol(prog, "vm_area_map_pages")
    ev.append(
        ("vm_sparse", str(vm_sparse), "symbol vm_area_map_pages",
         'e6f798225a31 ("mm: Introduce VM_SPARSE kind and '
         'vm_area_[un]map_pages().") (v6.9)')
    )

    # The per-node pools of purged areas came with the node ids above, in the
    # v6.9 vmap_node series.
    node_pools = has_member(prog, "struct vmap_node", "pool")
    ev.append(("node_pools", str(node_pools), "member vmap_node.pool",
               '"mm: vmalloc: offload free_vmap_area_lock lock" (v6.9)'))

    # 68ad4a330433 ("mm/vmalloc.c: keep track of free blocks for vmap
    # allocation") (in v5.2) added the free tree and list.
    free_list = has_symbol(prog, "free_vmap_area_list")
    ev.append(
        ("free_list", str(free_list), "symbol free_vmap_area_list",
         '68ad4a330433 ("mm/vmalloc.c: keep track of free blocks for vmap '
         'allocation") (v5.2)')
    )

    # CONFIG_NUMA: node_data[] exists, and show_numa_info() prints N<node>=.
    numa = has_symbol(prog, "node_data")
    ev.append(("numa", str(numa), "symbol node_data", "CONFIG_NUMA"))

    # "mm/vmalloc: fix data race in show_numa_info()" (2025; hash not
    # verified here; backported to stable -- Debian's 6.12.117 has it, the
    # 6.12.19 tree does not) made vmalloc_info_show() skip VM_UNINITIALIZED
    # areas and pass its counters to show_numa_info(m, v, counters). The
    # new parameter is the evidence; without the function's DWARF fall back
    # to requested_size, the nearest struct change of that era.
    params = _function_params(prog, "show_numa_info")
    if params is not None:
        vmallocinfo_skips_uninitialized = "counters" in params or len(params) >= 3
        how = "parameters of show_numa_info()"
    else:
        vmallocinfo_skips_uninitialized = vm_requested_size
        how = "no show_numa_info() in DWARF; coupled to vm_struct.requested_size"
    ev.append(
        ("vmallocinfo_skips_uninitialized", str(vmallocinfo_skips_uninitialized), how,
         '"mm/vmalloc: fix data race in show_numa_info()" (2025, stable backports)')
    )

    label = _label(busy, va_flags, lazy, block_index, block_cpu, vm_requested_size)
    return Layout(
        busy=busy,
        va_flags=va_flags,
        va_flags_node_id=va_flags_node_id,
        va_vm_member=va_vm_member,
        va_purge_list=va_purge_list,
        lazy=lazy,
        block_index=block_index,
        block_index_xarray=block_index_xarray,
        block_used_map=block_used_map,
        block_cpu=block_cpu,
        vm_page_order=vm_page_order,
        vm_requested_size=vm_requested_size,
        vm_allow_huge=vm_allow_huge,
        vm_sparse=vm_sparse,
        node_pools=node_pools,
        free_list=free_list,
        numa=numa,
        vmallocinfo_skips_uninitialized=vmallocinfo_skips_uninitialized,
        label=label,
        evidence=tuple(ev),
    )


def _variable_type(prog: drgn.Program, name: str) -> Optional[str]:
    """The type name of a global, None if it cannot be read."""
    try:
        return prog[name].type_.unaliased().type_name()
    except (KeyError, LookupError, ValueError):
        return None


def _function_params(prog: drgn.Program, name: str) -> Optional[List[str]]:
    import drgn

    try:
        t = prog.function(name).type_
    except (LookupError, ValueError, AttributeError):
        try:
            t = prog[name].type_
        except (KeyError, LookupError, ValueError):
            return None
    try:
        if t.kind != drgn.TypeKind.FUNCTION:
            return None
        return [p.name or "" for p in t.parameters]
    except (TypeError, ValueError):
        return None


def _label(
    busy: str,
    va_flags: str,
    lazy: str,
    block_index: str,
    block_cpu: bool,
    requested_size: bool,
) -> str:
    if requested_size:
        # Debian's 6.12.117 has it too (stable backport).
        return "latest (requested_size)"
    if busy == "vmap_nodes":
        return "6.10+" if block_cpu else "6.9"
    if block_index == "percpu":
        return "6.4-6.8"
    if va_flags == "vmap_ram":
        return "6.3"
    if va_flags == "legacy":
        return "<=5.3"
    if lazy == "llist":
        return "5.4-5.10"
    return "5.11-6.2"
