# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Synthetic kernels, one builder per vmalloc layout.

``build(layout, scene)`` returns a :class:`SynthKernel` whose ``prog`` looks,
to drgn and kcoretool, like a kernel of that layout holding ``scene``. The
struct definitions follow the kernel sources cited per layout (reference
§B); only members kcoretool or drgn's helpers read are spelled out, the rest
are placeholders of the right size so offsets stay realistic.

Layouts:

==========  ==============================================================
"5.3"       vmap_area.flags (VM_VM_AREA/VM_LAZY_FREE) + purge_list llist;
            lazy areas stay in vmap_area_list; global vmap_blocks xarray
"5.4"       no flags; union {subtree_max_size, vm, purge_list}; lazy areas
            on the vmap_purge_list llist (5.4-5.10)
"6.1"       no flags; purge_vmap_area_list (5.11-6.2); no used_map
"6.3"       flags VMAP_RAM/VMAP_BLOCK; used_map; global vmap_blocks
"6.4"       per-CPU vmap_block_queue.vmap_blocks (6.4-6.8)
"6.9"       vmap_nodes busy/lazy lists, node id in flags bits 8-15
"6.12"      + vmap_block.cpu (6.10+)
"latest"    + vm_struct.requested_size
==========  ==============================================================
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from tests.synth.image import Image

LAYOUTS = ("5.3", "5.4", "6.1", "6.3", "6.4", "6.9", "6.12", "latest")

PAGE = 4096
VMALLOC_START = 0xFFFFC90000000000
MODULES_VADDR = 0xFFFFFFFFC0000000
TEXT = 0xFFFFFFFF81000000  # where fake functions (callers) live
BBMAP_BITS = 1024  # VMAP_BBMAP_BITS for NR_CPUS <= 2048
BLOCK_SIZE = BBMAP_BITS * PAGE
XA_CHUNK_SHIFT = 6

VM_IOREMAP, VM_ALLOC, VM_MAP, VM_USERMAP, VM_DMA_COHERENT = 0x1, 0x2, 0x4, 0x8, 0x10
VM_UNINITIALIZED, VM_NO_GUARD, VM_SPARSE = 0x20, 0x40, 0x1000


@dataclasses.dataclass
class AreaSpec:
    """A busy (or lazy / pooled) area. ``vm_flags`` None means no vm_struct."""

    start: int
    size: int
    vm_flags: Optional[int] = VM_ALLOC
    caller: str = "__vmalloc_node_range"
    nr_pages: Optional[int] = None
    phys_addr: int = 0
    page_order: int = 0
    block: bool = False  # a vmap block's area (vm_flags must be None)
    vn_id: Optional[int] = None  # 6.9+ pool node id in flags


@dataclasses.dataclass
class BlockSpec:
    start: int
    cpu: int
    used: Sequence[Tuple[int, int]]  # page runs [a, b)
    free: int
    dirty: int
    dirty_min: int = BBMAP_BITS
    dirty_max: int = 0


@dataclasses.dataclass
class Scene:
    areas: List[AreaSpec]
    lazy: List[AreaSpec] = dataclasses.field(default_factory=list)
    pooled: List[AreaSpec] = dataclasses.field(default_factory=list)
    blocks: List[BlockSpec] = dataclasses.field(default_factory=list)
    holes: Optional[List[Tuple[int, int]]] = None  # None: derive from areas
    ncpus: int = 2
    nodes: int = 2  # vmap nodes (6.9+)
    lazy_nr: int = 0


@dataclasses.dataclass(frozen=True)
class Features:
    va_flags: str  # "legacy" | "none" | "vmap_ram"
    lazy: str  # "busy" | "llist" | "list" | "nodes"
    nodes: bool
    used_map: bool
    percpu_blocks: bool
    block_cpu: bool
    page_order: bool
    requested_size: bool
    sparse: bool
    allow_huge: bool


FEATURES: Dict[str, Features] = {
    # 4.x-5.3 include/linux/vmalloc.h, mm/vmalloc.c
    "5.3": Features("legacy", "busy", False, False, False, False, False, False, False, False),
    # 688fcbfc06e4 (v5.4) .. 96e2db456135 (v5.11)
    "5.4": Features("none", "llist", False, False, False, False, False, False, False, False),
    # 6.1 (krr-io/linux-6.1.0): page_order (HAVE_ARCH_HUGE_VMALLOC), no used_map
    "6.1": Features("none", "list", False, False, False, False, True, False, False, True),
    # 869176a09606 + used_map (v6.3)
    "6.3": Features("vmap_ram", "list", False, True, False, False, True, False, False, True),
    # 062eacf57ad9 (v6.4)
    "6.4": Features("vmap_ram", "list", False, True, True, False, True, False, False, True),
    # d093602919ad / 55c49fee57af, VM_SPARSE (v6.9)
    "6.9": Features("vmap_ram", "nodes", True, True, True, False, True, False, True, True),
    # "mm/vmalloc: fix vbq->free breakage" (v6.10), checked in 6.12.19
    "6.12": Features("vmap_ram", "nodes", True, True, True, True, True, False, True, True),
    # 7.1.3: vm_struct.requested_size
    "latest": Features("vmap_ram", "nodes", True, True, True, True, True, True, True, True),
}


class SynthKernel:
    """A built synthetic kernel: ``prog`` plus the addresses tests poke."""

    def __init__(self, layout: str, scene: Scene, image_size: int = 1 << 24, attach: bool = True) -> None:
        self.layout = layout
        self.f = FEATURES[layout]
        self.scene = scene
        self.img = Image(image_size, attach)
        self.prog = self.img.prog
        self.area_addr: Dict[int, int] = {}  # start -> struct vmap_area address
        self.vm_addr: Dict[int, int] = {}  # start -> struct vm_struct address
        self.block_addr: Dict[int, int] = {}  # start -> struct vmap_block address
        self.callers: Dict[str, int] = {}
        self._define_types()
        self._write()

    # -- types -------------------------------------------------------------

    def _define_types(self) -> None:
        img, f = self.img, self.f
        img.struct("list_head", [("struct list_head *", "next"), ("struct list_head *", "prev")])
        img.struct("llist_node", [("struct llist_node *", "next")])
        img.struct("llist_head", [("struct llist_node *", "first")])
        img.struct("rb_node", [
            ("unsigned long", "__rb_parent_color"),
            ("struct rb_node *", "rb_right"),
            ("struct rb_node *", "rb_left"),
        ])
        img.struct("rb_root", [("struct rb_node *", "rb_node")])
        img.struct("spinlock", [("unsigned int", "val")])
        img.typedef("spinlock_t", "struct spinlock")
        img.struct("callback_head", [("void *", "next"), ("void *", "func")])
        img.struct("atomic_long_t", [("long", "counter")])
        img.struct("cpumask", [("unsigned long[1]", "bits")])
        img.struct("page", [("unsigned long", "flags"), ("unsigned long[7]", "_rest")])
        img.struct("xarray", [
            ("spinlock_t", "xa_lock"), ("unsigned int", "xa_flags"), ("void *", "xa_head"),
        ])
        img.struct("xa_node", [
            ("unsigned char", "shift"), ("unsigned char", "offset"),
            ("unsigned char", "count"), ("unsigned char", "nr_values"),
            ("struct xa_node *", "parent"), ("struct xarray *", "array"),
            ("struct list_head", "private_list"),
            ("void *[64]", "slots"), ("unsigned long[3]", "marks"),
        ])

        vm = [
            ("struct vm_struct *", "next"), ("void *", "addr"), ("unsigned long", "size"),
            ("unsigned long", "flags"), ("struct page **", "pages"),
        ]
        if f.page_order:
            vm.append(("unsigned int", "page_order"))
        vm += [
            ("unsigned int", "nr_pages"), ("unsigned long long", "phys_addr"),
            ("void *", "caller"),
        ]
        if f.requested_size:
            vm.append(("unsigned long", "requested_size"))
        img.struct("vm_struct", vm)

        if f.va_flags == "legacy":
            va = [
                ("unsigned long", "va_start"), ("unsigned long", "va_end"),
                ("unsigned long", "flags"), ("struct rb_node", "rb_node"),
                ("struct list_head", "list"), ("struct llist_node", "purge_list"),
                ("struct vm_struct *", "vm"), ("struct callback_head", "rcu_head"),
            ]
        else:
            union = [("unsigned long", "subtree_max_size"), ("struct vm_struct *", "vm")]
            if f.lazy == "llist":
                union.append(("struct llist_node", "purge_list"))
            va = [
                ("unsigned long", "va_start"), ("unsigned long", "va_end"),
                ("struct rb_node", "rb_node"), ("struct list_head", "list"),
                (("union", union), None),
            ]
            if f.va_flags == "vmap_ram":
                va.append(("unsigned long", "flags"))
        img.struct("vmap_area", va)

        vb = [("spinlock_t", "lock"), ("struct vmap_area *", "va"),
              ("unsigned long", "free"), ("unsigned long", "dirty")]
        if f.used_map:
            vb.append((f"unsigned long[{BBMAP_BITS // 64}]", "used_map"))
        vb += [("unsigned long", "dirty_min"), ("unsigned long", "dirty_max"),
               ("struct list_head", "free_list"), ("struct callback_head", "rcu_head"),
               ("struct list_head", "purge")]
        if f.block_cpu:
            vb.append(("unsigned int", "cpu"))
        img.struct("vmap_block", vb)
        vbq = [("spinlock_t", "lock"), ("struct list_head", "free")]
        if f.percpu_blocks:
            vbq.append(("struct xarray", "vmap_blocks"))
        img.struct("vmap_block_queue", vbq)

        if f.nodes:
            img.struct("vmap_pool", [("struct list_head", "head"), ("unsigned long", "len")])
            img.struct("rb_list", [
                ("struct rb_root", "root"), ("struct list_head", "head"), ("spinlock_t", "lock"),
            ])
            img.struct("work_struct", [("unsigned long[4]", "opaque")])
            img.struct("vmap_node", [
                ("struct vmap_pool[256]", "pool"), ("spinlock_t", "pool_lock"),
                ("bool", "skip_populate"), ("struct rb_list", "busy"),
                ("struct rb_list", "lazy"), ("struct list_head", "purge_list"),
                ("struct work_struct", "purge_work"), ("unsigned long", "nr_purged"),
            ])

    # -- writing -----------------------------------------------------------

    def caller(self, name: str) -> int:
        if name not in self.callers:
            addr = TEXT + 0x1000 * (len(self.callers) + 1)
            self.callers[name] = addr
            self.img.function(name, addr, 0x200)
        return self.callers[name] + 0x4B

    def _init_list(self, head: int) -> None:
        self.img.w64(head, head)
        self.img.w64(head + 8, head)

    def _link(self, head: int, nodes: Sequence[int]) -> None:
        """Write a circular list_head list: head -> nodes... -> head."""
        img = self.img
        chain = [head] + list(nodes)
        for i, n in enumerate(chain):
            img.w64(n, chain[(i + 1) % len(chain)])
            img.w64(n + 8, chain[i - 1])

    def _rbtree(self, root: int, nodes: Sequence[int]) -> None:
        """A balanced binary tree over ``nodes`` (already in key order)."""
        img = self.img

        def build(lo: int, hi: int, parent: int) -> int:
            if lo >= hi:
                return 0
            mid = (lo + hi) // 2
            n = nodes[mid]
            img.w64(n, parent)  # colour bit 0 = red; walkers ignore colour
            img.w64(n + 16, build(lo, mid, n))
            img.w64(n + 8, build(mid + 1, hi, n))
            return n

        img.w64(root, build(0, len(nodes), 0))

    def _xarray(self, xa: int, entries: Dict[int, int]) -> None:
        """Write an xarray holding ``{index: pointer}``; multi-level as needed."""
        img = self.img
        if not entries:
            img.w64(xa + 8, 0)
            return
        if list(entries) == [0]:
            img.w64(xa + 8, entries[0])
            return
        top = max(entries)
        shift = 0
        while top >> (shift + XA_CHUNK_SHIFT):
            shift += XA_CHUNK_SHIFT
        node_sz = img.sizeof("xa_node")
        o_slots = img.offsetof("xa_node", "slots")

        def build(base: int, shift: int, parent: int, offset: int) -> int:
            node = img.alloc(node_sz, 64)
            img.put("xa_node", node, shift=shift, offset=offset, parent=parent, array=xa)
            count = 0
            for i in range(64):
                lo = base + (i << shift)
                hi = lo + (1 << shift)
                inside = [k for k in entries if lo <= k < hi]
                if not inside:
                    continue
                count += 1
                if shift == 0:
                    img.w64(node + o_slots + 8 * i, entries[lo])
                else:
                    child = build(lo, shift - XA_CHUNK_SHIFT, node, i)
                    img.w64(node + o_slots + 8 * i, child | 2)
            img.put("xa_node", node, count=count)
            return node

        img.w64(xa + 8, build(0, shift, 0, 0) | 2)

    def _write_area(self, a: AreaSpec, lazy: bool) -> int:
        img, f = self.img, self.f
        addr = img.alloc_struct("vmap_area")
        img.put("vmap_area", addr, va_start=a.start, va_end=a.start + a.size)
        flags = 0
        if a.vm_flags is not None and not lazy:
            vm = img.alloc_struct("vm_struct")
            nr = a.nr_pages if a.nr_pages is not None else (
                (a.size - (0 if a.vm_flags & VM_NO_GUARD else PAGE)) // PAGE
                if a.vm_flags & (VM_ALLOC | VM_MAP | VM_USERMAP | VM_DMA_COHERENT) else 0
            )
            fields = dict(addr=a.start, size=a.size, flags=a.vm_flags,
                          nr_pages=nr, phys_addr=a.phys_addr, caller=self.caller(a.caller))
            if f.page_order:
                fields["page_order"] = a.page_order
            if f.requested_size:
                fields["requested_size"] = a.size - PAGE
            if nr:
                pages = img.alloc(8 * nr)
                for i in range(min(nr, 4)):
                    img.w64(pages + 8 * i, 0xFFFFEA0000000000 + 64 * (0x1000 + i))
                fields["pages"] = pages
            img.put("vm_struct", vm, **fields)
            img.put("vmap_area", addr, vm=vm)
            self.vm_addr[a.start] = vm
            if f.va_flags == "legacy":
                flags = 0x4  # VM_VM_AREA
        if f.va_flags == "legacy" and lazy:
            flags = 0x1  # VM_LAZY_FREE
        if f.va_flags == "vmap_ram":
            if a.vm_flags is None and not lazy:
                flags = 0x3 if a.block else 0x1
            if a.vn_id is not None:
                flags |= (a.vn_id + 1) << 8
        if flags:
            img.put("vmap_area", addr, flags=flags)
        self.area_addr[a.start] = addr
        return addr

    def _write(self) -> None:
        img, f, sc = self.img, self.f, self.scene
        ncpus = sc.ncpus

        # CPUs and per-CPU areas.
        img.global_var("nr_cpu_ids", "unsigned int")
        img.w32(img.globals["nr_cpu_ids"][1], ncpus)
        for m in ("__cpu_possible_mask", "__cpu_online_mask"):
            a = img.global_var(m, "struct cpumask")
            img.w64(a, (1 << ncpus) - 1)
        pco = img.global_var("__per_cpu_offset", f"unsigned long[{max(ncpus, 1)}]")
        vbq_sz = img.sizeof("vmap_block_queue")
        vbq = img.global_var("vmap_block_queue", "struct vmap_block_queue")
        copies = [img.alloc(vbq_sz, 64) for _ in range(ncpus)]
        for cpu, c in enumerate(copies):
            img.w64(pco + 8 * cpu, c - vbq)
            self._init_list(c + img.offsetof("vmap_block_queue", "free"))
        self.vbq_copies = copies

        img.global_var("vmalloc_base", "unsigned long")
        img.w64(img.globals["vmalloc_base"][1], VMALLOC_START)
        lz = img.global_var("vmap_lazy_nr", "struct atomic_long_t")
        img.w64(lz, sc.lazy_nr)
        img.function("vmalloc", TEXT + 0x100000)
        if f.allow_huge:
            img.function("vmalloc_huge", TEXT + 0x100400)
        if f.sparse:
            img.function("vm_area_map_pages", TEXT + 0x100800)

        # Blocks first so their areas can point at them.
        block_area = {b.start for b in sc.blocks}
        busy = sorted(sc.areas, key=lambda a: a.start)
        area_nodes = {a.start: self._write_area(a, False) for a in busy}
        lazy_nodes = [self._write_area(a, True) for a in sorted(sc.lazy, key=lambda a: a.start)]
        pooled_nodes = [(a, self._write_area(a, True)) for a in sc.pooled]
        for b in sc.blocks:
            self._write_block(b, area_nodes[b.start])
        assert block_area <= set(area_nodes)

        lst = img.offsetof("vmap_area", "list")
        rb = img.offsetof("vmap_area", "rb_node")
        if f.nodes:
            nn = sc.nodes
            vn_sz = img.sizeof("vmap_node")
            single = img.global_var("single", "struct vmap_node")
            arr = img.alloc(vn_sz * nn, 64) if nn > 1 else single
            img.global_var("vmap_nodes", "struct vmap_node *")
            img.w64(img.globals["vmap_nodes"][1], arr)
            img.global_var("nr_vmap_nodes", "unsigned int")
            img.w32(img.globals["nr_vmap_nodes"][1], nn)
            zone = 16 * PAGE if nn > 1 else 1
            img.global_var("vmap_zone_size", "unsigned int")
            img.w32(img.globals["vmap_zone_size"][1], zone)
            per_busy: List[List[int]] = [[] for _ in range(nn)]
            for a in busy:
                per_busy[(a.start // zone) % nn].append(area_nodes[a.start])
            per_lazy: List[List[int]] = [[] for _ in range(nn)]
            for a, n in zip(sorted(sc.lazy, key=lambda a: a.start), lazy_nodes):
                per_lazy[(a.start // zone) % nn].append(n)
            o_busy = img.offsetof("vmap_node", "busy")
            o_lazy = img.offsetof("vmap_node", "lazy")
            o_head = img.offsetof("rb_list", "head")
            o_pool = img.offsetof("vmap_node", "pool")
            for i in range(nn):
                vn = arr + i * vn_sz
                for j in range(256):
                    self._init_list(vn + o_pool + 24 * j)
                self._init_list(vn + img.offsetof("vmap_node", "purge_list"))
                self._link(vn + o_busy + o_head, [n + lst for n in per_busy[i]])
                self._rbtree(vn + o_busy, [n + rb for n in per_busy[i]])
                self._link(vn + o_lazy + o_head, [n + lst for n in per_lazy[i]])
                self._rbtree(vn + o_lazy, [n + rb for n in per_lazy[i]])
            pools: Dict[Tuple[int, int], List[int]] = {}
            for a, n in pooled_nodes:
                node = (a.vn_id or 0) % nn
                pools.setdefault((node, a.size // PAGE - 1), []).append(n + lst)
            for (node, idx), ns in pools.items():
                vn = arr + node * vn_sz
                self._link(vn + o_pool + 24 * idx, ns)
                img.w64(vn + o_pool + 24 * idx + 16, len(ns))
            self.vmap_nodes = arr
        else:
            head = img.global_var("vmap_area_list", "struct list_head")
            root = img.global_var("vmap_area_root", "struct rb_root")
            order = busy
            if f.lazy == "busy":
                order = sorted(busy + sc.lazy, key=lambda a: a.start)
                nodes = [self.area_addr[a.start] for a in order]
            else:
                nodes = [area_nodes[a.start] for a in order]
            self._link(head, [n + lst for n in nodes])
            self._rbtree(root, [n + rb for n in nodes])
            if f.lazy == "list":
                ph = img.global_var("purge_vmap_area_list", "struct list_head")
                self._link(ph, [n + lst for n in lazy_nodes])
                img.global_var("purge_vmap_area_root", "struct rb_root")
                self._rbtree(img.globals["purge_vmap_area_root"][1], [n + rb for n in lazy_nodes])
            elif f.lazy == "llist":
                pl = img.global_var("vmap_purge_list", "struct llist_head")
                po = img.offsetof("vmap_area", "purge_list")
                prev = 0
                for n in reversed(lazy_nodes):
                    img.w64(n + po, prev)
                    prev = n + po
                img.w64(pl, prev)

        # Free list: explicit holes or the complement of all areas in
        # [VMALLOC_START, VMALLOC_END) plus the module range.
        holes = sc.holes
        if holes is None:
            taken = sorted(
                [(a.start, a.start + a.size) for a in sc.areas + sc.lazy + sc.pooled]
            )
            holes = []
            for lo, hi in ((VMALLOC_START, VMALLOC_START + (32 << 40) - 1),
                           (MODULES_VADDR, 0xFFFFFFFFFF000000)):
                pos = lo
                for s, e in taken:
                    if e <= pos or s >= hi:
                        continue
                    if s > pos:
                        holes.append((pos, s))
                    pos = max(pos, e)
                if pos < hi:
                    holes.append((pos, hi))
        self.holes = holes
        fh = img.global_var("free_vmap_area_list", "struct list_head")
        hn = []
        for s, e in holes:
            n = img.alloc_struct("vmap_area")
            img.put("vmap_area", n, va_start=s, va_end=e)
            hn.append(n + lst)
        self._link(fh, hn)
        img.global_var("free_vmap_area_root", "struct rb_root")

        # Block index.
        idx = {b.start: (b.start - (VMALLOC_START & ~(BLOCK_SIZE - 1))) // BLOCK_SIZE
               for b in sc.blocks}
        if f.percpu_blocks:
            per: List[Dict[int, int]] = [{} for _ in range(ncpus)]
            for b in sc.blocks:
                per[(b.start // BLOCK_SIZE) % ncpus][idx[b.start]] = self.block_addr[b.start]
            o = img.offsetof("vmap_block_queue", "vmap_blocks")
            for cpu in range(ncpus):
                self._xarray(copies[cpu] + o, per[cpu])
        else:
            xa = img.global_var("vmap_blocks", "struct xarray")
            self._xarray(xa, {idx[b.start]: self.block_addr[b.start] for b in sc.blocks})

    def _write_block(self, b: BlockSpec, va: int) -> None:
        img, f = self.img, self.f
        addr = img.alloc_struct("vmap_block")
        fields = dict(va=va, free=b.free, dirty=b.dirty, dirty_min=b.dirty_min,
                      dirty_max=b.dirty_max)
        if f.used_map:
            bm = 0
            for lo, hi in b.used:
                bm |= ((1 << (hi - lo)) - 1) << lo
            fields["used_map"] = bm
        if f.block_cpu:
            fields["cpu"] = b.cpu
        img.put("vmap_block", addr, **fields)
        fl = img.offsetof("vmap_block", "free_list")
        if b.free:
            # On its CPU's free list while it has free space.
            head = self.vbq_copies[b.cpu] + img.offsetof("vmap_block_queue", "free")
            first = img.r64(head)
            nodes = []
            n = first
            while n != head:
                nodes.append(n)
                n = img.r64(n)
            self._link(head, nodes + [addr + fl])
        else:
            self._init_list(addr + fl)
        self.block_addr[b.start] = addr


def build(layout: str, scene: Scene, image_size: int = 1 << 24) -> SynthKernel:
    """Build a synthetic kernel of ``layout`` (one of :data:`LAYOUTS`)."""
    return SynthKernel(layout, scene, image_size)


def standard_scene(layout: str = "6.12") -> Scene:
    """
    A small scene with one area of every kind, a vmap block with three
    pieces (one freed between live ones), a large vm_map_ram, lazy and
    pooled areas.
    """
    V = VMALLOC_START
    M = MODULES_VADDR
    areas = [
        AreaSpec(V + 0x0000000, 5 * PAGE, VM_ALLOC, "alloc_thread_stack_node"),
        AreaSpec(V + 0x0010000, 3 * PAGE, VM_MAP, "vmap"),
        AreaSpec(V + 0x0020000, 2 * PAGE, VM_IOREMAP, "acpi_os_map_iomem",
                 phys_addr=0xFED00000),
        AreaSpec(V + 0x0030000, 5 * PAGE, VM_ALLOC | VM_USERMAP, "vmalloc_user"),
        AreaSpec(V + 0x0040000, 3 * PAGE, VM_MAP | VM_DMA_COHERENT, "dma_common_pages_remap"),
        AreaSpec(V + 0x0050000, 2 * PAGE, VM_ALLOC | VM_UNINITIALIZED, "__vmalloc_node_range",
                 nr_pages=0),
        AreaSpec(V + 0x0200000, 0x401000, VM_ALLOC, "kvmalloc_node", page_order=9,
                 nr_pages=1024),
        AreaSpec(V + 0x0800000, 128 * PAGE, None, "", vn_id=1),  # big vm_map_ram
        AreaSpec(V + 0x0C00000, BLOCK_SIZE, None, "", block=True),  # vmap block
        AreaSpec(M + 0x0000000, 0x5000, VM_ALLOC, "module_alloc" if layout in
                 ("5.3", "5.4", "6.1", "6.3", "6.4", "6.9") else "execmem_alloc"),
        AreaSpec(M + 0x0200000, 0x200000, VM_ALLOC, "bpf_prog_pack_alloc"),
    ]
    if FEATURES[layout].sparse:
        areas.append(AreaSpec(V + 0x1000000, 16 * PAGE, VM_SPARSE, "bpf_arena_alloc_pages",
                              nr_pages=0))
    blocks = [
        # pieces: pages [0,4) live, [4,6) freed (dirty), [6,7) live; 7 used of 1024
        BlockSpec(V + 0x0C00000, cpu=1, used=[(0, 4), (6, 7)], free=BBMAP_BITS - 7,
                  dirty=2, dirty_min=4, dirty_max=6),
    ]
    lazy = [AreaSpec(V + 0x0060000, 9 * PAGE, VM_ALLOC, "vfree")]
    pooled = []
    if FEATURES[layout].nodes:
        pooled = [AreaSpec(V + 0x0070000, 4 * PAGE, None, "", vn_id=0)]
    return Scene(areas=areas, lazy=lazy, pooled=pooled, blocks=blocks, lazy_nr=9)
