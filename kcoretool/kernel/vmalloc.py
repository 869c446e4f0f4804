# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vmalloc bookkeeping, raw
------------------------

Fast, bounded readers for the kernel's vmalloc state (:linux:`mm/vmalloc.c`):
busy, lazy and pooled ``vmap_area``\\ s, ``vm_struct``\\ s, ``vmap_block``\\ s
and the free list. Member offsets are resolved once from the program's
types; each structure is then read with a single ``prog.read`` and decoded
with a precompiled :class:`struct.Struct`. Results are plain tuples; the
:mod:`kcoretool.model` layer turns them into dataclasses.
"""

from __future__ import annotations

import struct
from operator import itemgetter
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

import drgn

from kcoretool.errors import CoreFormatError
from kcoretool.kernel.layout import Layout, detect_layout
from kcoretool.kernel.program import vmcoreinfo_of
from kcoretool.kernel.vmflags import VM_LAZY_FREE, VM_LAZY_FREEING, VM_UNINITIALIZED, VM_VM_AREA
from kcoretool.kernel.walk import (
    DEFAULT_LIMIT,
    WalkLog,
    is_kernel_pointer,
    list_walk,
    llist_walk,
    xarray_walk,
)
from kcoretool.x86_64 import (
    KERNEL_HALF,
    KERNEL_IMAGE_SIZE_MIN,
    MODULES_END,
    START_KERNEL_MAP,
    VMALLOC_SIZE_TB_L4,
    VMALLOC_SIZE_TB_L5,
    VMALLOC_START_L4,
)

__all__ = (
    "RawArea",
    "RawBlock",
    "RawVm",
    "VmallocWalker",
    "numa_page_counts",
    "page_physaddrs",
)

class RawArea(NamedTuple):
    address: int  #: of the struct vmap_area
    start: int
    end: int
    vm: int  #: struct vm_struct * (0 if none or not valid in this layout)
    flags: Optional[int]  #: vmap_area.flags if the layout has it
    node: Optional[int]  #: index of the vmap_node holding it (6.9+)


class RawVm(NamedTuple):
    address: int
    addr: int
    size: int
    flags: int
    pages_array: int  #: vm_struct.pages
    page_order: Optional[int]
    nr_pages: int
    phys_addr: int
    caller: int
    requested_size: Optional[int]


class RawBlock(NamedTuple):
    address: int  #: of the struct vmap_block
    va: int  #: struct vmap_area *
    free: int
    dirty: int
    dirty_min: int
    dirty_max: int
    used_map: Optional[int]  #: bitmap as an int (bit i = page i), if present
    bits: Optional[int]  #: VMAP_BBMAP_BITS if known from used_map's size
    cpu: Optional[int]  #: vmap_block.cpu (6.10+)
    xa_index: Optional[int]  #: which per-CPU xarray held it (6.4+), or None


_U64 = struct.Struct("<Q")


class _BlockLayout(NamedTuple):
    """Where ``struct vmap_block``'s members are (offsets; ``used_map`` as
    (offset, size); None for members this kernel lacks)."""

    size: int
    va: int
    free: int
    dirty: int
    dirty_min: int
    dirty_max: int
    used_map: Optional[Tuple[int, int]]
    cpu: Optional[int]


def _packer(fields: Sequence[Tuple[str, int, str]], size: int) -> Tuple[struct.Struct, Tuple[str, ...]]:
    """A little-endian Struct that decodes ``(name, offset, code)`` fields."""
    fmt = "<"
    pos = 0
    names = []
    for name, off, code in sorted(fields, key=lambda f: f[1]):
        if off < pos:
            raise ValueError(f"overlapping field {name}")
        if off > pos:
            fmt += f"{off - pos}x"
        fmt += code
        pos = off + struct.calcsize("<" + code)
        names.append(name)
    if size > pos:
        fmt += f"{size - pos}x"
    return struct.Struct(fmt), tuple(names)


def _int_code(t: drgn.Type) -> str:
    # Unsigned whatever the type info says: every vm_struct member read is
    # unsigned in the kernel (a signed one is damaged BTF in a dump), and
    # the model stores them unsigned.
    return {1: "B", 2: "H", 4: "I", 8: "Q"}[drgn.sizeof(t.unaliased())]


class VmallocWalker:
    """
    Reads the raw vmalloc state of one program. Construct once; every method
    takes a :class:`WalkLog` and a ``limit`` and never raises for corrupt
    data (it warns and returns what it has).
    """

    def __init__(self, prog: drgn.Program, layout: Optional[Layout] = None) -> None:
        self.prog = prog
        self.layout = layout = layout if layout is not None else detect_layout(prog)

        va_t = prog.type("struct vmap_area")
        self.va_size = drgn.sizeof(va_t)
        self.va_list = drgn.offsetof(va_t, "list")
        fields = [
            ("start", drgn.offsetof(va_t, "va_start"), "Q"),
            ("end", drgn.offsetof(va_t, "va_end"), "Q"),
            ("vm", drgn.offsetof(va_t, layout.va_vm_member), "Q"),
        ]
        if layout.va_flags != "none":
            fields.append(("flags", drgn.offsetof(va_t, "flags"), "Q"))
        self._va_struct, self._va_names = _packer(fields, self.va_size)
        # The same and list.next, for walks: one unpack per entry.
        try:
            walk: Optional[Tuple[struct.Struct, Tuple[str, ...]]] = _packer(
                fields + [("next", self.va_list, "Q")], self.va_size)
        except ValueError:  # list overlapping a member read: never in any kernel
            walk = None
        self._walk = walk
        self.va_purge = drgn.offsetof(va_t, "purge_list") if layout.va_purge_list else None

        vm_t = prog.type("struct vm_struct")
        self.vm_size = drgn.sizeof(vm_t)
        vfields = []
        for name in ("addr", "size", "flags", "pages", "nr_pages", "phys_addr", "caller"):
            vfields.append(("pages_array" if name == "pages" else name, drgn.offsetof(vm_t, name),
                            _int_code_or_ptr(vm_t, name)))
        if layout.vm_page_order:
            vfields.append(("page_order", drgn.offsetof(vm_t, "page_order"), _int_code_or_ptr(vm_t, "page_order")))
        if layout.vm_requested_size:
            vfields.append(("requested_size", drgn.offsetof(vm_t, "requested_size"),
                            _int_code_or_ptr(vm_t, "requested_size")))
        self._vm_struct, self._vm_names = _packer(vfields, self.vm_size)

        self._vb: Optional[_BlockLayout] = None  # lazily, blocks are optional
        self._page_size: Optional[int] = None

    # -- areas -------------------------------------------------------------

    def _decode_va(self, addr: int, buf: bytes, node: Optional[int]) -> Tuple[Any, ...]:
        d = dict(zip(self._va_names, self._va_struct.unpack_from(buf)))
        start, end, vm, flags = d["start"], d["end"], d["vm"], d.get("flags")
        if self.layout.va_flags == "legacy" and not (flags or 0) & VM_VM_AREA:
            vm = 0  # the pointer is only meaningful with VM_VM_AREA
        return (addr, start, end, vm, flags, node)

    def read_va(self, addr: int, node: Optional[int] = None) -> Optional[RawArea]:
        """One ``struct vmap_area`` as the kernel has it now (None if it is
        unreadable): what a live reader revalidates against."""
        try:
            buf = self.prog.read(addr, self.va_size)
        except drgn.FaultError:
            return None
        return RawArea(*self._decode_va(addr, buf, node))

    def _areas_from_list(
        self, head: int, log: WalkLog, what: str, limit: int, node: Optional[int],
        ordered: bool = False,
    ) -> Iterator[Tuple[Any, ...]]:
        """
        Walk a list of ``vmap_area``\\ s; plain tuples in :class:`RawArea`
        order (namedtuples are slow). This is :func:`list_walk` inlined --
        the same checks (cycle, pointer, readability, limit) without a
        generator layer per area.

        :param ordered: the kernel keeps the list sorted by address
            (``link_va()`` inserts in order: the busy and free lists), so a
            cycle shows as an address that does not grow -- checked without
            remembering every entry (a million of them cost ~60 MiB).
        """
        prog = self.prog
        read = prog.read
        unpack = self._va_struct.unpack_from
        size = self.va_size
        member = self.va_list
        names = self._va_names
        # Fast path when the members are in the 6.3+ order (start, end, vm,
        # flags); anything else goes through the by-name decoder.
        fast = (names == ("start", "end", "vm", "flags") and self.layout.va_flags == "vmap_ram"
                and self._walk is not None)
        nflags = names == ("start", "end", "vm")
        pick: Optional[Callable[[Tuple[int, ...]], Tuple[int, ...]]] = None
        if self._walk is not None:
            # (start, end, vm, flags, next) from one unpack
            wstruct, wnames = self._walk
            wunpack = wstruct.unpack_from
            order = tuple(wnames.index(f) for f in ("start", "end", "vm", "flags", "next") if f in wnames)
            if order != tuple(range(len(order))):
                pick = itemgetter(*order)
        decode = self._decode_va
        next_at = struct.Struct("<Q").unpack_from
        try:
            pos = prog.read_u64(head)
        except drgn.FaultError:
            log.warn(f"{what}: list head {head:#x} is unreadable")
            return
        seen: Set[int] = set()
        add = seen.add
        prev = -1
        count = 0
        while pos != head:
            if pos < KERNEL_HALF or pos & 7:
                log.warn(f"{what}: invalid list pointer {pos:#x} after {count} entries")
                return
            if not ordered:
                if pos in seen:
                    log.warn(f"{what}: cycle at {pos:#x} after {count} entries")
                    return
                add(pos)
            if count >= limit:
                log.warn(f"{what}: stopped after {limit} entries (limit)")
                return
            addr = pos - member
            try:
                buf = read(addr, size)
            except drgn.FaultError:
                log.warn(f"{what}: entry {addr:#x} is unreadable after {count} entries")
                return
            if fast:
                if pick is not None:
                    start, end, vm, flags, nxt = pick(wunpack(buf))
                else:
                    start, end, vm, flags, nxt = wunpack(buf)
                t: Tuple[Any, ...] = (addr, start, end, vm, flags, node)
            elif nflags:
                start, end, vm = unpack(buf)
                t = (addr, start, end, vm, None, node)
            else:
                t = decode(addr, buf, node)
                start = t[1]
            if ordered:
                if start <= prev:
                    log.warn(f"{what}: entry {addr:#x} starts at {start:#x}, not above the one before it "
                             f"({prev:#x}): a cycle or a damaged list; stopped after {count} entries")
                    return
                prev = start
            count += 1
            yield t
            pos = nxt if fast else next_at(buf, member)[0]

    def vmap_nodes(self, log: WalkLog) -> List[Tuple[int, int]]:
        """``[(index, address of struct vmap_node)]`` on 6.9+, else ``[]``."""
        prog = self.prog
        if self.layout.busy != "vmap_nodes":
            return []
        # d093602919ad: on !SMP GCC may drop the locations of these three
        # (drgn 5b8c4670); fall back to &single and 1 as drgn does.
        try:
            nodes = prog["vmap_nodes"].value_()
        except drgn.ObjectAbsentError:
            nodes = prog.variable("single", "mm/vmalloc.c").address_
        try:
            nr = prog["nr_vmap_nodes"].value_()
        except drgn.ObjectAbsentError:
            nr = 1
        if not 1 <= nr <= 4096:
            log.warn(f"nr_vmap_nodes is {nr}; using 1")
            nr = 1
        vn_size = drgn.sizeof(prog.type("struct vmap_node"))
        return [(i, nodes + i * vn_size) for i in range(nr)]

    def busy_walks(self, log: WalkLog, limit: int = DEFAULT_LIMIT) -> Iterator[Iterator[Tuple[Any, ...]]]:
        """
        One tuple generator per busy list (each vmap node on 6.9+), so hot
        loops can iterate them directly. ``limit`` applies to each list.
        """
        prog = self.prog
        if self.layout.busy == "vmap_nodes":
            vn_t = prog.type("struct vmap_node")
            off = drgn.offsetof(vn_t, "busy.head")
            for i, vn in self.vmap_nodes(log):
                yield self._areas_from_list(vn + off, log, f"vmap_nodes[{i}].busy", limit, i, ordered=True)
        else:
            head = prog["vmap_area_list"].address_
            yield self._areas_from_list(head, log, "vmap_area_list", limit, None, ordered=True)

    def lazy_tuples(self, log: WalkLog, limit: int = DEFAULT_LIMIT) -> List[Tuple[Any, ...]]:
        prog = self.prog
        lazy = self.layout.lazy
        out: List[Tuple[Any, ...]] = []
        if lazy == "nodes":
            vn_t = prog.type("struct vmap_node")
            lazy_off = drgn.offsetof(vn_t, "lazy.head")
            # vn->purge_list only holds areas while a purge is running; like
            # show_purge_info() we report the lazy lists.
            for i, vn in self.vmap_nodes(log):
                out.extend(
                    self._areas_from_list(
                        vn + lazy_off, log, f"vmap_nodes[{i}].lazy", limit - len(out), i
                    )
                )
        elif lazy == "list":
            head = prog["purge_vmap_area_list"].address_
            out.extend(self._areas_from_list(head, log, "purge_vmap_area_list", limit, None))
        elif lazy == "llist" and self.va_purge is not None:
            first = prog["vmap_purge_list"].first.value_()
            for addr, buf in llist_walk(
                prog, first, self.va_purge, self.va_size, log, "vmap_purge_list", limit
            ):
                t = self._decode_va(addr, buf, None)
                # The union member "vm" shares storage with the llist node.
                out.append(t[:3] + (0,) + t[4:])
        return out

    def pooled_tuples(self, log: WalkLog, limit: int = DEFAULT_LIMIT) -> List[Tuple[Any, ...]]:
        prog = self.prog
        if not self.layout.node_pools:
            return []
        vn_t = prog.type("struct vmap_node")
        pool_t = vn_t.member("pool").type
        pool_off = drgn.offsetof(vn_t, "pool")
        n = pool_t.length or 0
        vp_t = pool_t.type
        vp_size = drgn.sizeof(vp_t)
        head_off = drgn.offsetof(vp_t, "head")
        out: List[Tuple[Any, ...]] = []
        for i, vn in self.vmap_nodes(log):
            for j in range(n):
                head = vn + pool_off + j * vp_size + head_off
                for t in self._areas_from_list(
                    head, log, f"vmap_nodes[{i}].pool[{j}]", limit - len(out), i
                ):
                    out.append(t[:3] + (0,) + t[4:])
                if len(out) >= limit:
                    return out
        return out

    def free_areas(self, log: WalkLog, limit: int = DEFAULT_LIMIT) -> List[Tuple[int, int]]:
        """``(start, end)`` of each entry of ``free_vmap_area_list``."""
        if not self.layout.free_list:
            return []
        head = self.prog["free_vmap_area_list"].address_
        return [
            (t[1], t[2])
            for t in self._areas_from_list(head, log, "free_vmap_area_list", limit, None, ordered=True)
        ]

    # -- vm_struct ---------------------------------------------------------

    def vm_unpacker(self) -> Tuple[int, Callable[[bytes], Tuple[Any, ...]], Callable[[Tuple[Any, ...]], Any]]:
        """
        ``(vm_size, unpack, pick)``: ``pick(unpack(buf) + (None,))`` gives
        a ``struct vm_struct``'s fields as a plain tuple in :class:`RawVm`
        order without ``address`` (None for members this kernel lacks),
        for loops over many areas.
        """
        names = self._vm_names
        missing = len(names)  # the None appended
        pick = itemgetter(*(names.index(f) if f in names else missing for f in RawVm._fields[1:]))
        return self.vm_size, self._vm_struct.unpack_from, pick

    def with_vm(self, areas: Iterable[Tuple[Any, ...]], log: WalkLog) -> Iterator[Tuple[Any, ...]]:
        """Each raw area (:class:`RawArea` order) with its vm_struct's fields
        appended as one tuple (:class:`RawVm` order without ``address``;
        None without a vm_struct, or when it is unreadable: a warning).
        An area flagged lazy (<= 5.3) has no live vm_struct: not read."""
        vm_size, unpack, pick = self.vm_unpacker()
        pad = (None,)
        read = self.prog.read
        FaultError = drgn.FaultError
        lazy = (VM_LAZY_FREE | VM_LAZY_FREEING) if self.layout.va_flags == "legacy" else 0
        for r in areas:
            vmp = r[3]
            vm = None
            if vmp and not (lazy and (r[4] or 0) & lazy):
                try:
                    vm = pick(unpack(read(vmp, vm_size)) + pad)
                except FaultError:
                    log.warn(f"vmap_area {r[0]:#x}: vm_struct {vmp:#x} is unreadable")
            yield r + (vm,)

    def mapped_pages(self, start: int, first: int, last: int) -> Optional[List[bool]]:
        """Whether each page ``first..last-1`` from ``start`` is mapped in the
        kernel's page tables (None if they cannot be walked here)."""
        try:
            from drgn.helpers.linux.mm import follow_phys

            mm = self.prog["init_mm"].address_of_()
        except (KeyError, LookupError, ImportError):
            return None
        ps = self.page_size()
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

    def release(self) -> Optional[str]:
        """UTS_RELEASE, or None."""
        try:
            return str(self.prog["UTS_RELEASE"].string_().decode())
        except (KeyError, LookupError, drgn.FaultError, AttributeError):
            return None

    # -- vmap blocks -------------------------------------------------------

    def _block_layout(self) -> _BlockLayout:
        if self._vb is None:
            t = self.prog.type("struct vmap_block")
            used: Optional[Tuple[int, int]] = None
            if self.layout.block_used_map:
                used = (drgn.offsetof(t, "used_map"), drgn.sizeof(t.member("used_map").type))
            self._vb = _BlockLayout(
                drgn.sizeof(t),
                drgn.offsetof(t, "va"),
                drgn.offsetof(t, "free"),
                drgn.offsetof(t, "dirty"),
                drgn.offsetof(t, "dirty_min"),
                drgn.offsetof(t, "dirty_max"),
                used,
                drgn.offsetof(t, "cpu") if self.layout.block_cpu else None,
            )
        return self._vb

    def read_block(self, addr: int, xa_index: Optional[int]) -> Optional[RawBlock]:
        size, o_va, o_free, o_dirty, o_dmin, o_dmax, used, o_cpu = self._block_layout()
        try:
            buf = self.prog.read(addr, size)
        except drgn.FaultError:
            return None
        def q(off: int) -> int:
            return int(_U64.unpack_from(buf, off)[0])

        used_map: Optional[int] = None
        bits: Optional[int] = None
        if used is not None:
            used_map = int.from_bytes(buf[used[0]:used[0] + used[1]], "little")
            bits = used[1] * 8
        cpu = struct.unpack_from("<I", buf, o_cpu)[0] if o_cpu is not None else None
        return RawBlock(
            addr, q(o_va), q(o_free), q(o_dirty), q(o_dmin), q(o_dmax),
            used_map, bits, cpu, xa_index,
        )

    def possible_cpus(self, log: WalkLog) -> List[int]:
        from drgn.helpers.linux.cpumask import for_each_possible_cpu

        try:
            cpus = []
            for cpu in for_each_possible_cpu(self.prog):
                cpus.append(cpu)
                if len(cpus) > 65536:
                    log.warn("cpu_possible_mask has more than 65536 CPUs; truncated")
                    break
            return cpus
        except (LookupError, drgn.FaultError) as e:
            log.warn(f"cannot read cpu_possible_mask ({e}); assuming CPU 0 only")
            return [0]

    def _percpu_addr(self, symbol: str, cpu: int) -> int:
        base = self.prog[symbol].address_
        try:
            # Modulo 2^64, as per_cpu_ptr() computes it: since 6.15 x86-64's
            # per-CPU symbols are kernel addresses, not offsets from 0, and
            # __per_cpu_offset holds "negative" deltas ("x86/percpu/64: Use
            # relative percpu offsets", v6.15; found on Debian's 7.3).
            return (base + self.prog["__per_cpu_offset"][cpu].value_()) & 0xFFFF_FFFF_FFFF_FFFF
        except KeyError:
            return base  # !SMP

    def blocks(self, log: WalkLog, limit: int = DEFAULT_LIMIT) -> List[RawBlock]:
        """Every vmap_block in the kernel's block index (never the free lists)."""
        idx = self.layout.block_index
        prog = self.prog
        entries: List[Tuple[int, Optional[int]]] = []
        if idx == "percpu":
            vbq_t = prog.type("struct vmap_block_queue")
            off = drgn.offsetof(vbq_t, "vmap_blocks")
            for cpu in self.possible_cpus(log):
                xa = self._percpu_addr("vmap_block_queue", cpu) + off
                for _, entry in xarray_walk(
                    prog, xa, log, f"vmap_block_queue[{cpu}].vmap_blocks",
                    limit - len(entries),
                ):
                    entries.append((entry, cpu))
        elif idx == "global" or idx == "radix":
            name = "vmap_blocks" if idx == "global" else "vmap_block_tree"
            if not self.layout.block_index_xarray:
                log.warn(f"{name} is a pre-4.20 radix tree; vmap blocks not read")
                return []
            for _, entry in xarray_walk(prog, prog[name].address_, log, name, limit):
                entries.append((entry, None))
        out = []
        for entry, xa_index in entries:
            if not is_kernel_pointer(entry):
                log.warn(f"vmap_blocks: invalid entry {entry:#x}")
                continue
            b = self.read_block(entry, xa_index)
            if b is None:
                log.warn(f"vmap_block {entry:#x} is unreadable")
                continue
            out.append(b)
        return out

    def block_free_list_cpus(self, log: WalkLog, limit: int = 1_000_000) -> Dict[int, int]:
        """``{vmap_block address: cpu}`` from each CPU's ``vbq->free`` list."""
        prog = self.prog
        try:
            vbq_t = prog.type("struct vmap_block_queue")
            vb_t = prog.type("struct vmap_block")
        except LookupError:
            return {}
        off = drgn.offsetof(vbq_t, "free")
        fl = drgn.offsetof(vb_t, "free_list")
        out: Dict[int, int] = {}
        for cpu in self.possible_cpus(log):
            head = self._percpu_addr("vmap_block_queue", cpu) + off
            for addr, _ in list_walk(
                prog, head, fl, drgn.sizeof(vb_t), log,
                f"vmap_block_queue[{cpu}].free", limit,
            ):
                out[addr] = cpu
        return out

    # -- scalars -----------------------------------------------------------

    def page_size(self) -> int:
        if self._page_size is None:
            try:
                self._page_size = self.prog["PAGE_SIZE"].value_()
            except (KeyError, LookupError, drgn.FaultError):
                self._page_size = 4096
        return self._page_size

    def vmalloc_range(self) -> Tuple[int, int, str]:
        """``(VMALLOC_START, VMALLOC_END, how)``; END is the kernel's value."""
        prog = self.prog
        how = "vmalloc_base"
        try:
            start = prog["vmalloc_base"].value_()
        except (KeyError, LookupError, drgn.FaultError):
            start = _vmcoreinfo_number(prog, "VMALLOC_START")
            how = "VMCOREINFO"
            if start is None:
                start = VMALLOC_START_L4
                how = "default (no vmalloc_base, no VMCOREINFO)"
        l5 = False
        try:
            l5 = bool(prog["__pgtable_l5_enabled"].value_())
        except (KeyError, LookupError, drgn.FaultError):
            n = _vmcoreinfo_number(prog, "pgtable_l5_enabled")
            l5 = bool(n)
        size_tb = VMALLOC_SIZE_TB_L5 if l5 else VMALLOC_SIZE_TB_L4
        return start, start + (size_tb << 40) - 1, how

    def modules_range(self) -> Tuple[int, int]:
        """x86_64 ``MODULES_VADDR .. MODULES_END``: MODULES_VADDR is
        __START_KERNEL_map + KERNEL_IMAGE_SIZE (VMCOREINFO exports it)."""
        image = _vmcoreinfo_number(self.prog, "KERNEL_IMAGE_SIZE")
        if image is None:
            image = KERNEL_IMAGE_SIZE_MIN  # a safe lower bound
        return START_KERNEL_MAP + image, MODULES_END

    def lazy_nr(self) -> Optional[int]:
        try:
            return self.prog["vmap_lazy_nr"].counter.value_()
        except (KeyError, LookupError, AttributeError, drgn.FaultError):
            return None

    def lazy_max_pages(self) -> Optional[int]:
        """``lazy_max_pages()``: fls(num_online_cpus()) * 32 MiB / PAGE_SIZE."""
        from drgn.helpers.linux.cpumask import num_online_cpus

        try:
            n = num_online_cpus(self.prog)
        except (LookupError, drgn.FaultError, ValueError):
            return None
        return n.bit_length() * ((32 << 20) // self.page_size())


def page_physaddrs(prog: drgn.Program, pages_array: int, nr_pages: int) -> List[int]:
    """Physical address of each page in a vm_struct's ``pages[]`` (one read
    for the array)."""
    from drgn.helpers.linux.mm import page_to_phys

    if not nr_pages or not pages_array:
        return []
    raw = prog.read(pages_array, 8 * nr_pages)
    page_t = prog.type("struct page *")
    out = []
    for i in range(nr_pages):
        p = int.from_bytes(raw[8 * i:8 * i + 8], "little")
        out.append(page_to_phys(drgn.Object(prog, page_t, p)).value_())
    return out


def numa_page_counts(prog: drgn.Program) -> Callable[[int, int, Optional[int], int], Dict[int, int]]:
    """
    ``counts(pages_array, nr_pages, page_order, vm_flags)``: ``{node: pages}``
    of a vm_struct the way vmallocinfo's ``show_numa_info()`` counts
    (stepping by ``1 << page_order``). The node of each page comes from the
    node spans in ``node_data[]``.
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

    def counts(pages_array: int, nr_pages: int, page_order: Optional[int], vm_flags: int) -> Dict[int, int]:
        out: Dict[int, int] = {}
        if not nr_pages or not pages_array or vm_flags & VM_UNINITIALIZED:
            return out
        step = 1 << (page_order or 0)
        raw = prog.read(pages_array, 8 * nr_pages)
        for i in range(0, nr_pages, step):
            p = int.from_bytes(raw[8 * i:8 * i + 8], "little")
            pfn = page_to_pfn(drgn.Object(prog, page_t, p)).value_()
            for s, e, nid in spans:
                if s <= pfn < e:
                    out[nid] = out.get(nid, 0) + step
                    break
        return dict(sorted(out.items()))

    return counts


def _int_code_or_ptr(t: drgn.Type, member: str) -> str:
    mt = t.member(member).type.unaliased()
    if mt.kind == drgn.TypeKind.POINTER:
        return "Q"
    return _int_code(mt)


def _vmcoreinfo_number(prog: drgn.Program, key: str) -> Optional[int]:
    info = vmcoreinfo_of(prog)
    try:
        return info.number(key) if info is not None else None
    except CoreFormatError:
        return None
