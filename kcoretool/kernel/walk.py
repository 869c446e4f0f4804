# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Bounded walks
-------------

Walks over the kernel's linked lists, red-black trees and xarrays that
never trust the core: each one detects cycles, caps its length, validates
pointers, records what went wrong in a :class:`WalkLog`, and returns what it
found so far. They work on raw addresses (``prog.read_u64``/``prog.read``)
rather than :class:`drgn.Object` so that a million-node walk stays fast.

The layout of the node types (``list_head``, ``llist_node``, ``xa_node``) is
fixed by the kernel ABI; offsets that can change are looked up from the
program's types.
"""

from __future__ import annotations

import struct
import warnings
from typing import Iterator, List, Optional, Tuple

import drgn

from kcoretool.x86_64 import KERNEL_HALF

__all__ = (
    "DEFAULT_LIMIT",
    "WalkLog",
    "WalkWarning",
    "is_kernel_pointer",
    "llist_walk",
    "list_walk",
    "xarray_walk",
)

#: Default cap on the number of nodes any single walk visits.
DEFAULT_LIMIT = 10_000_000

_U64 = struct.Struct("<Q")


class WalkWarning(UserWarning):
    """A walk found a corrupt or suspicious structure and stopped early."""


class WalkLog:
    """
    Collects warnings from walks. The library never prints: the model keeps
    the messages (``VmallocModel.warnings``) and, if ``emit`` is true, each one
    is also issued with :func:`warnings.warn` as a :class:`WalkWarning`.
    """

    __slots__ = ("messages", "emit", "cap", "suppressed")

    def __init__(self, emit: bool = False, cap: int = 1000) -> None:
        self.messages: List[str] = []
        self.emit = emit
        #: keep at most this many messages; count the rest in ``suppressed``.
        self.cap = cap
        self.suppressed = 0

    def warn(self, message: str) -> None:
        if len(self.messages) >= self.cap:
            self.suppressed += 1
            return
        self.messages.append(message)
        if self.emit:
            warnings.warn(message, WalkWarning, stacklevel=3)

    def summary(self) -> List[str]:
        """The messages, plus one line counting suppressed ones."""
        if self.suppressed:
            return self.messages + [f"... and {self.suppressed} more warnings"]
        return list(self.messages)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def __len__(self) -> int:
        return len(self.messages)




def is_kernel_pointer(value: int) -> bool:
    """Whether ``value`` looks like an aligned x86_64 kernel-half pointer."""
    return value >= KERNEL_HALF and not value & 7


def _read(prog: drgn.Program, addr: int, size: int) -> Optional[bytes]:
    try:
        return prog.read(addr, size)
    except drgn.FaultError:
        return None


def list_walk(
    prog: drgn.Program,
    head: int,
    member_offset: int,
    entry_size: int,
    log: WalkLog,
    what: str,
    limit: int = DEFAULT_LIMIT,
) -> Iterator[Tuple[int, bytes]]:
    """
    Walk a ``struct list_head`` list of containing structures.

    Yields ``(entry_address, entry_bytes)`` for each entry; ``entry_bytes``
    is the whole containing structure (``entry_size`` bytes) read at once, so
    callers never read an entry twice. Stops (with a warning in ``log``) at a
    cycle that does not return to the head, an invalid or unreadable
    pointer, or after ``limit`` entries.

    :param head: address of the ``struct list_head`` that heads the list.
    :param member_offset: offset of the ``list_head`` member in the entry.
    """
    try:
        node = prog.read_u64(head)
    except drgn.FaultError:
        log.warn(f"{what}: list head {head:#x} is unreadable")
        return
    seen = set()
    count = 0
    while node != head:
        if not is_kernel_pointer(node):
            log.warn(f"{what}: invalid list pointer {node:#x} after {count} entries")
            return
        if node in seen:
            log.warn(f"{what}: cycle at {node:#x} after {count} entries")
            return
        if count >= limit:
            log.warn(f"{what}: stopped after {limit} entries (limit)")
            return
        seen.add(node)
        entry = node - member_offset
        buf = _read(prog, entry, entry_size)
        if buf is None:
            log.warn(f"{what}: entry {entry:#x} is unreadable after {count} entries")
            return
        yield entry, buf
        count += 1
        node = _U64.unpack_from(buf, member_offset)[0]


def llist_walk(
    prog: drgn.Program,
    first: int,
    member_offset: int,
    entry_size: int,
    log: WalkLog,
    what: str,
    limit: int = DEFAULT_LIMIT,
) -> Iterator[Tuple[int, bytes]]:
    """
    Walk a NULL-terminated ``struct llist_node`` chain starting at the node
    address ``first`` (the value of ``llist_head.first``); otherwise like
    :func:`list_walk`.
    """
    node = first
    seen = set()
    count = 0
    while node:
        if not is_kernel_pointer(node):
            log.warn(f"{what}: invalid llist pointer {node:#x} after {count} entries")
            return
        if node in seen:
            log.warn(f"{what}: cycle at {node:#x} after {count} entries")
            return
        if count >= limit:
            log.warn(f"{what}: stopped after {limit} entries (limit)")
            return
        seen.add(node)
        entry = node - member_offset
        buf = _read(prog, entry, entry_size)
        if buf is None:
            log.warn(f"{what}: entry {entry:#x} is unreadable after {count} entries")
            return
        yield entry, buf
        count += 1
        node = _U64.unpack_from(buf, member_offset)[0]


class _XaLayout:
    __slots__ = ("shift", "slots", "chunk")

    def __init__(self, prog: drgn.Program) -> None:
        t = prog.type("struct xa_node")
        self.shift = drgn.offsetof(t, "shift")
        self.slots = drgn.offsetof(t, "slots")
        self.chunk = t.member("slots").type.length


def xarray_walk(
    prog: drgn.Program,
    xa: int,
    log: WalkLog,
    what: str,
    limit: int = DEFAULT_LIMIT,
) -> Iterator[Tuple[int, int]]:
    """
    Walk a ``struct xarray`` at address ``xa`` (``xa_head`` is at offset 8,
    after ``xa_lock`` and ``xa_flags``, whose size is taken from the type);
    yields ``(index, entry)`` for each present non-internal entry, in index
    order. Handles multi-level trees; detects cycles and bad ``shift``
    values, caps the number of entries, and warns into ``log``.
    """
    xa_type = prog.type("struct xarray")
    head_off = drgn.offsetof(xa_type, "xa_head")
    lay = _XaLayout(prog)
    try:
        head = prog.read_u64(xa + head_off)
    except drgn.FaultError:
        log.warn(f"{what}: xarray {xa:#x} is unreadable")
        return
    if not head:
        return
    if not _xa_is_node(head):
        # A single entry at index 0.
        if not _xa_is_internal(head):
            yield 0, head
        return
    seen = set()
    count = 0
    chunk_bits = lay.chunk.bit_length() - 1
    # Stack of (node address, base index, expected shift or None).
    stack: List[Tuple[int, int, Optional[int]]] = [(head - 2, 0, None)]
    while stack:
        node, base, expect = stack.pop()
        if not is_kernel_pointer(node):
            log.warn(f"{what}: invalid xa_node pointer {node:#x}")
            continue
        if node in seen:
            log.warn(f"{what}: cycle at xa_node {node:#x}")
            continue
        seen.add(node)
        buf = _read(prog, node, lay.slots + 8 * lay.chunk)
        if buf is None:
            log.warn(f"{what}: xa_node {node:#x} is unreadable")
            continue
        shift = buf[lay.shift]
        if shift % chunk_bits or shift > 64 or (expect is not None and shift != expect):
            log.warn(f"{what}: xa_node {node:#x} has bad shift {shift}")
            continue
        children = []
        for i in range(lay.chunk):
            entry = _U64.unpack_from(buf, lay.slots + 8 * i)[0]
            if not entry:
                continue
            index = base + (i << shift)
            if _xa_is_node(entry):
                if shift == 0:
                    log.warn(f"{what}: xa_node {node:#x} has a child below shift 0")
                    continue
                children.append((entry - 2, index, shift - chunk_bits))
            elif _xa_is_internal(entry):
                continue  # sibling, retry or zero entry
            else:
                if count >= limit:
                    log.warn(f"{what}: stopped after {limit} entries (limit)")
                    return
                count += 1
                yield index, entry
        stack.extend(reversed(children))


def _xa_is_internal(entry: int) -> bool:
    return entry & 3 == 2


def _xa_is_node(entry: int) -> bool:
    return _xa_is_internal(entry) and entry > 4096
