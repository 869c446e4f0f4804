# SPDX-License-Identifier: LGPL-2.1-or-later
"""
kallsyms tables found by their own structure
--------------------------------------------

From v6.0 VMCOREINFO says where the kernel's kallsyms tables are
(5fd8fea935a1, "vmcoreinfo: include kallsyms symbols"); before, a vmcore
without a vmlinux gives no address at all.  The tables are still in the
image, laid out by ``scripts/kallsyms.c`` -- up to v6.1, in this order, each
aligned to 8 bytes::

    kallsyms_offsets        s32 x N      (CONFIG_KALLSYMS_BASE_RELATIVE)
    kallsyms_relative_base  u64
    kallsyms_num_syms       u32          N
    kallsyms_names          N x (length byte, that many token bytes)
    kallsyms_markers        u32 x ceil(N / 256): offset of every 256th name
    kallsyms_token_table    256 NUL-terminated strings
    kallsyms_token_index    u16 x 256: offset of each token in the table

:func:`find_kallsyms_tables` finds the token table by a run every kernel
has -- the digits keep their own byte codes, so ``"0\\0" .. "9\\0"`` are
tokens 0x30..0x39 in a row -- and then each other table from it, checking
every one against the next (the token index against the table, the markers
against a walk of all N names, the base against the kernel's ``_stext``).
Nothing is taken on one match alone.
"""

from __future__ import annotations

import struct
from array import array
from typing import Callable, Dict, Optional

__all__ = ("find_kallsyms_tables", "SCAN_BYTES")

#: how much of the image after ``_stext`` is searched (the tables sit in
#: .rodata: ~15 MiB in on Debian's 5.10, the whole image is ~50 MiB)
SCAN_BYTES = 96 << 20
_CHUNK = 1 << 20
_DIGITS = b"".join(bytes([c]) + b"\0" for c in b"0123456789")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

Read = Callable[[int, int], bytes]


def _align8(x: int) -> int:
    return (x + 7) & ~7


def find_kallsyms_tables(read: Read, stext: int, limit: int = SCAN_BYTES) -> Dict[str, int]:
    """
    The addresses of the kallsyms tables (the names VMCOREINFO would give:
    ``kallsyms_offsets``, ``kallsyms_relative_base``, ``kallsyms_num_syms``,
    ``kallsyms_names``, ``kallsyms_markers``, ``kallsyms_token_table``,
    ``kallsyms_token_index``) of a pre-v6.2 x86-64 kernel whose ``_stext`` is at
    ``stext``.

    :param read: reads kernel virtual memory; raises on a missing page.
    :raises LookupError: no table set in the image checks out (the message
        says how far the search went).
    """
    tail = b""
    pos = stext
    end = stext + limit
    missing = 0
    while pos < end:
        chunk = _read_chunk(read, pos)
        # 8 MiB with no page at all: past the image's end.
        missing = missing + 1 if chunk is None else 0
        if missing >= 8:
            break
        buf = tail + (chunk or bytes(_CHUNK))
        base = pos - len(tail)
        i = buf.find(_DIGITS)
        while i >= 0:
            found = _check(read, base + i, stext)
            if found is not None:
                return found
            i = buf.find(_DIGITS, i + 1)
        tail = buf[-len(_DIGITS):]
        pos += _CHUNK
    raise LookupError(f"no kallsyms tables in the {(pos - stext) >> 20} MiB of the kernel image after "
                      f"_stext {stext:#x}")


def _read_chunk(read: Read, pos: int) -> Optional[bytes]:
    """``_CHUNK`` bytes at ``pos``, None if not one page of it is there.
    Pages the core lacks read as zeros, which no table check accepts: the
    image has unmapped holes (the freed padding between .text and .rodata,
    which makedumpfile drops too)."""
    try:
        return read(pos, _CHUNK)
    except Exception:  # drgn.FaultError: read the pages that are there
        out = bytearray(_CHUNK)
        got = False
        for off in range(0, _CHUNK, 4096):
            try:
                out[off:off + 4096] = read(pos + off, 4096)
                got = True
            except Exception:
                pass
        return bytes(out) if got else None


def _read_forward(read: Read, start: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``start``, stopping at the first page that
    cannot be read."""
    out = b""
    pos = start
    while len(out) < size:
        n = min(size - len(out), 4096 - (pos & 4095))
        try:
            out += read(pos, n)
        except Exception:
            break
        pos += n
    return out


def _read_back(read: Read, end: int, size: int) -> bytes:
    """Up to ``size`` bytes ending at ``end``, stopping (going down) at the
    first page that cannot be read."""
    parts = []
    got = 0
    pos = end
    while got < size:
        n = min(size - got, (pos & 4095) or 4096)
        try:
            parts.append(read(pos - n, n))
        except Exception:
            break
        pos -= n
        got += n
    return b"".join(reversed(parts))


def _check(read: Read, zero: int, stext: int) -> Optional[Dict[str, int]]:
    """Every table, given the address of token 0x30 ("0"); None if any check fails."""
    try:
        return _tables(read, zero, stext)
    except (ValueError, IndexError, struct.error):
        return None
    except Exception:  # an unreadable page: not these tables
        return None


def _tables(read: Read, zero: int, stext: int) -> Optional[Dict[str, int]]:
    # Token table end: tokens 0x30..0xff follow "0".
    after = _read_forward(read, zero, 64 << 10)
    p = 0
    for _ in range(0x100 - 0x30):
        p = after.index(b"\0", p) + 1
    index_at = _align8(zero + p)
    index = array("H")
    index.frombytes(read(index_at, 512))
    table = zero - index[0x30]
    if index[0] != 0 or table % 8 or any(index[i] >= index[i + 1] for i in range(255)):
        return None
    tokens = read(table, index_at - table)
    for i in range(256):
        o = index[i]
        if o and tokens[o - 1] != 0:
            return None  # each token starts right after the previous one's NUL
    # Markers: u32s ending at the table (a 4-byte zero pad after an odd count).
    below = _read_back(read, table, 64 << 10)
    words = array("I")
    words.frombytes(below[len(below) % 4:])
    for pad in (0, 1):
        found = _from_markers(read, words, table, pad, stext)
        if found is not None:
            found["kallsyms_token_table"] = table
            found["kallsyms_token_index"] = index_at
            return found
    return None


def _from_markers(read: Read, words: array[int], table: int, pad: int,
                  stext: int) -> Optional[Dict[str, int]]:
    last = len(words) - 1 - pad
    if pad and words[-1] != 0:
        return None
    # Walk down while the values decrease: markers[0] is the first 0.
    j = last
    while j > 0 and words[j] > 0 and words[j - 1] < words[j]:
        j -= 1
    m = last - j + 1
    # An odd number of markers ends with a 4-byte pad, an even one without.
    if words[j] != 0 or m % 2 != pad:
        return None
    markers = list(words[j:last + 1])
    markers_at = table - 4 * (len(words) - j)
    if markers_at % 8:
        return None
    # The names end at the markers (padded to 8); num_syms sits 8 bytes
    # before the names, with N in (256 (m - 1), 256 m].
    # The last group is at most 256 names of 256 bytes.
    top = (markers_at - markers[-1]) & ~7
    region = _read_back(read, markers_at, markers_at - (top - 256 * 256 - 32))
    lo = markers_at - len(region)
    for names_at in range(top, lo + 16 - 1, -8):
        r = names_at - lo
        n = _U32.unpack_from(region, r - 8)[0]
        if not 256 * (m - 1) < n <= 256 * m or _U32.unpack_from(region, r - 4)[0]:
            continue
        if _names_fit(region, r, n, markers, markers_at - lo):
            return _before_names(read, names_at, n, markers_at, stext)
    return None


def _names_fit(region: bytes, start: int, n: int, markers: list[int], end: int) -> bool:
    """Walk all ``n`` names (one length byte each: pre-v6.1 format) and
    check every 256th against the markers and the end against theirs."""
    pos = start
    for i in range(n):
        if not i & 0xFF and pos - start != markers[i >> 8]:
            return False
        if pos >= end:
            return False
        pos += region[pos] + 1
    return end - 8 < pos <= end


def _before_names(read: Read, names_at: int, n: int, markers_at: int,
                  stext: int) -> Optional[Dict[str, int]]:
    num_at = names_at - 8
    base_at = num_at - 8
    base = _U64.unpack(read(base_at, 8))[0]
    if base >> 63 == 0:
        return None
    offsets_at = base_at - _align8(4 * n)
    offsets = array("i")
    offsets.frombytes(read(offsets_at, 4 * n))
    # Symbols are sorted by address: with CONFIG_KALLSYMS_ABSOLUTE_PERCPU the
    # per-CPU ones (>= 0) come first, then base - 1 - offset; _stext must be one.
    absolute = offsets[0] >= 0 and min(offsets) < 0
    addrs = (o if o >= 0 else base - 1 - o for o in offsets) if absolute else \
        (base + (o & 0xFFFFFFFF) for o in offsets)
    if stext not in set(addrs):
        return None
    return {
        "kallsyms_offsets": offsets_at,
        "kallsyms_relative_base": base_at,
        "kallsyms_num_syms": num_at,
        "kallsyms_names": names_at,
        "kallsyms_markers": markers_at,
    }
