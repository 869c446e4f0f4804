# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Maple trees, raw
----------------

A bounded, cycle-safe walk over a ``struct maple_tree``
(:linux:`lib/maple_tree.c`, v6.1+), the index of a process's VMAs
(``mm->mm_mt``).  drgn's ``mapletree`` helpers were the reference for the
encoding; this walk differs in never trusting the core: every node is read
once with one ``prog.read``, checked (alignment, type, pivots inside the
parent's range and ascending, dead-node marker, depth against the tree's
height), and a damaged node is reported in the :class:`WalkLog` and
skipped while the rest of the tree is still walked.

Node encoding (``mt_mk_node``): ``node | type << 3 | 0x4``; nodes are 256
bytes, 256-aligned.  ``maple_range_64`` (leaves and non-alloc internal
nodes) has 15 pivots and 16 slots with its metadata over the last slot;
``maple_arange_64`` (internal nodes of allocation trees such as mm_mt) has
9 pivots, 10 slots, 10 gaps and its metadata after them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import drgn

from kcoretool.kernel.walk import DEFAULT_LIMIT, WalkLog, is_kernel_pointer

__all__ = ("MapleLayout", "maple_layout", "mt_for_each", "mtree_load", "mtree_range")

ULONG_MAX = (1 << 64) - 1
#: enum maple_type (include/linux/maple_tree.h); 7.1's maple_copy (4) is a
#: stack-only helper no reader ever sees.
MAPLE_DENSE, MAPLE_LEAF_64, MAPLE_RANGE_64, MAPLE_ARANGE_64 = 0, 1, 2, 3
MAPLE_NODE_MASK = 0xFF
MAPLE_RESERVED_RANGE = 4096
#: xa_mk_internal(257): 6.9+ dup_mmap() marks where a failed fork stopped.
XA_ZERO_ENTRY = 0x406
MT_FLAGS_HEIGHT_MASK = 0x7C
MT_FLAGS_HEIGHT_OFFSET = 2
#: deeper than any real tree (the kernel's MAPLE_HEIGHT_MAX is 31)
MAX_HEIGHT = 31


@dataclass(frozen=True)
class MapleLayout:
    """Offsets of ``struct maple_tree`` members and node sizes, from the
    program's types (6.12 moved ``ma_flags`` before ``ma_root``)."""

    root_off: int
    flags_off: int
    range_pivots: int = 15
    range_slots: int = 16
    range_slot_off: int = 128
    range_meta_off: int = 248
    arange_pivots: int = 9
    arange_slots: int = 10
    arange_slot_off: int = 80
    arange_meta_off: int = 240


def maple_layout(prog: drgn.Program) -> MapleLayout:
    t = prog.type("struct maple_tree")
    kw = {"root_off": drgn.offsetof(t, "ma_root"), "flags_off": drgn.offsetof(t, "ma_flags")}
    try:
        r = prog.type("struct maple_range_64")
        a = prog.type("struct maple_arange_64")
        kw.update(
            range_pivots=r.member("pivot").type.length,
            range_slots=r.member("slot").type.length,
            range_slot_off=drgn.offsetof(r, "slot"),
            range_meta_off=drgn.offsetof(r, "meta"),
            arange_pivots=a.member("pivot").type.length,
            arange_slots=a.member("slot").type.length,
            arange_slot_off=drgn.offsetof(a, "slot"),
            arange_meta_off=drgn.offsetof(a, "meta"),
        )
    except (LookupError, TypeError, ValueError):
        pass  # the 64-bit layout above, unchanged 6.1 .. 7.1
    return MapleLayout(**kw)


def _is_node(entry: int) -> bool:
    # the root: xa_is_node() (MAPLE_ROOT_NODE 0x2 set, above the reserved range)
    return entry & 3 == 2 and entry > MAPLE_RESERVED_RANGE


def _is_child(entry: int) -> bool:
    # below the root, slots hold plain encoded nodes: node | type << 3 | 0x4
    return bool(entry & 0x4) and not entry & 0x3 and is_kernel_pointer(entry & ~MAPLE_NODE_MASK)


_STRUCTS: Dict[Any, Any] = {}


def _struct(n: int) -> struct.Struct:
    st = _STRUCTS.get(n)
    if st is None:
        st = _STRUCTS[n] = struct.Struct(f"<{n}Q")
    return st


def _decode(lay: MapleLayout, buf: bytes, mtype: int, node_max: int) -> Tuple[Tuple[int, ...], Tuple[int, ...], int]:
    """(pivots, slots, data end) of one node, as ma_data_end() sees them."""
    if mtype == MAPLE_ARANGE_64:
        np_, ns, soff, moff = lay.arange_pivots, lay.arange_slots, lay.arange_slot_off, lay.arange_meta_off
    else:
        np_, ns, soff, moff = lay.range_pivots, lay.range_slots, lay.range_slot_off, lay.range_meta_off
    pivots = _struct(np_).unpack_from(buf, 8)
    slots = _struct(ns).unpack_from(buf, soff)
    if mtype == MAPLE_ARANGE_64:
        end = buf[moff]
    else:
        last = pivots[np_ - 1]
        if last == 0:
            end = buf[moff]
        elif last == node_max:
            end = np_ - 1
        else:
            end = np_
    return pivots, slots, end


def mt_for_each(
    prog: drgn.Program,
    tree: int,
    log: WalkLog,
    what: str,
    lay: Optional[MapleLayout] = None,
    limit: int = DEFAULT_LIMIT,
) -> Iterator[Tuple[int, int, int]]:
    """
    Yield ``(first, last, entry)`` for every non-NULL entry of the maple
    tree at address ``tree``, in ascending order (a depth-first walk: all
    leaves are at the same depth).  ``XA_ZERO_ENTRY`` and reserved values
    are skipped like the kernel's loads skip them.  Damaged nodes are logged
    and skipped; the walk visits at most ``limit`` nodes.
    """
    lay = lay or maple_layout(prog)
    try:
        hdr = prog.read(tree, max(lay.root_off, lay.flags_off) + 8)
    except drgn.FaultError:
        log.warn(f"{what}: maple tree {tree:#x} is unreadable")
        return
    root = struct.unpack_from("<Q", hdr, lay.root_off)[0]
    flags = struct.unpack_from("<I", hdr, lay.flags_off)[0]
    if not root:
        return
    if not _is_node(root):
        # A single entry at index 0 (never a VMA: see mas_start()).
        if not root & 3:
            yield 0, 0, root
        return
    height = (flags & MT_FLAGS_HEIGHT_MASK) >> MT_FLAGS_HEIGHT_OFFSET
    seen = set()
    visited = 0
    # (encoded node, min, max, depth, parent node)
    stack: List[Tuple[int, int, int, int, int]] = [(root, 0, ULONG_MAX, 1, 0)]
    while stack:
        enode, lo, hi, depth, parent = stack.pop()
        node = enode & ~MAPLE_NODE_MASK
        mtype = (enode >> 3) & 0xF
        where = f"{what}: maple node {node:#x} [{lo:#x}-{hi:#x}]"
        if not is_kernel_pointer(node):
            log.warn(f"{where}: invalid node pointer {enode:#x}")
            continue
        if mtype not in (MAPLE_LEAF_64, MAPLE_RANGE_64, MAPLE_ARANGE_64):
            log.warn(f"{where}: node type {mtype} is not one a reader can see; skipped")
            continue
        if node in seen:
            log.warn(f"{where}: cycle (node seen before); skipped")
            continue
        if visited >= limit:
            log.warn(f"{what}: stopped after {limit} maple nodes (limit)")
            return
        if depth > MAX_HEIGHT or (height and depth > height):
            log.warn(f"{where}: deeper than the tree's height {height}; skipped")
            continue
        seen.add(node)
        visited += 1
        try:
            buf = prog.read(node, 256)
        except drgn.FaultError:
            log.warn(f"{where}: unreadable; skipped")
            continue
        node_parent = struct.unpack_from("<Q", buf, 0)[0]
        if node_parent & ~MAPLE_NODE_MASK == node:
            # ma_dead_node(): freed (RCU) but still reachable from a stale view
            log.warn(f"{where}: dead node (freed while the dump was taken); skipped")
            continue
        if parent and node_parent & ~MAPLE_NODE_MASK != parent:
            log.warn(f"{where}: parent pointer {node_parent:#x} is not its parent {parent:#x}")
        pivots, slots, end = _decode(lay, buf, mtype, hi)
        if end >= len(slots):
            log.warn(f"{where}: data end {end} beyond its {len(slots)} slots; skipped")
            continue
        leaf = mtype == MAPLE_LEAF_64
        ranges = []
        prev = lo
        bad = False
        for i in range(end + 1):
            last = pivots[i] if i < end else hi
            if last < prev or last > hi:
                log.warn(f"{where}: pivot {i} = {last:#x} outside [{prev:#x}, {hi:#x}]; "
                         f"rest of the node skipped")
                bad = True
                break
            entry = slots[i]
            if leaf:
                # NULL is a gap; XA_ZERO_ENTRY and reserved values read as NULL
                if entry and entry & 3 != 2:
                    yield prev, last, entry
            else:
                ranges.append((prev, last, entry))
            if last == ULONG_MAX:
                break
            prev = last + 1
        if leaf:
            continue
        children = []
        for first, last, child in ranges:
            if not child:
                continue
            if not _is_child(child):
                log.warn(f"{where}: slot for [{first:#x}-{last:#x}] holds {child:#x}, not a node")
                continue
            children.append((child, first, last, depth + 1, node))
        if bad and not children:
            continue
        stack.extend(reversed(children))


def mtree_load(
    prog: drgn.Program, tree: int, index: int, lay: Optional[MapleLayout] = None
) -> Optional[int]:
    """The entry covering ``index`` (None for a gap or a damaged path): the
    kernel's ``mtree_load()``, bounded by the maximum height."""
    got = mtree_range(prog, tree, index, lay)
    return got[0] if got is not None else None


def mtree_range(
    prog: drgn.Program, tree: int, index: int, lay: Optional[MapleLayout] = None
) -> Optional[Tuple[Optional[int], int, int]]:
    """``(entry or None, first, last)``: what covers ``index`` and the
    inclusive range the tree stores it over (a gap's range for None, so a
    reader knows how far nothing is mapped); None for a damaged path."""
    lay = lay or maple_layout(prog)
    try:
        hdr = prog.read(tree, max(lay.root_off, lay.flags_off) + 8)
    except drgn.FaultError:
        return None
    entry = struct.unpack_from("<Q", hdr, lay.root_off)[0]
    if not entry:
        return None, 0, ULONG_MAX
    if not _is_node(entry):
        if index == 0 and not entry & 3:
            return entry, 0, 0
        return None, 1, ULONG_MAX
    lo, hi = 0, ULONG_MAX
    for _ in range(MAX_HEIGHT):
        node = entry & ~MAPLE_NODE_MASK
        mtype = (entry >> 3) & 0xF
        if not is_kernel_pointer(node) or mtype not in (MAPLE_LEAF_64, MAPLE_RANGE_64, MAPLE_ARANGE_64):
            return None
        try:
            buf = prog.read(node, 256)
        except drgn.FaultError:
            return None
        if struct.unpack_from("<Q", buf, 0)[0] & ~MAPLE_NODE_MASK == node:
            return None  # ma_dead_node(): freed under the walk (RCU); mas_walk() restarts
        pivots, slots, end = _decode(lay, buf, mtype, hi)
        if end >= len(slots):
            return None
        off = end
        for i in range(end):
            if pivots[i] >= index:
                off = i
                break
        if off > 0:
            lo = pivots[off - 1] + 1
        if off < end:
            hi = pivots[off]
        if not lo <= index <= hi:
            return None  # pivots out of order: a node changing or reused under the walk
        entry = slots[off]
        if mtype == MAPLE_LEAF_64:
            if not entry or entry == XA_ZERO_ENTRY or entry & 3 == 2:
                return None, lo, hi
            return entry, lo, hi
        if not _is_child(entry):
            return None
    return None
