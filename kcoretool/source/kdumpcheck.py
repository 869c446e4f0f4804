"""
Checking a kdump-compressed file before anyone reads it
-------------------------------------------------------

libkdumpfile (inside drgn's wheel) maps the file and trusts its headers: a
file cut short inside its headers, bitmaps or page descriptors, or a header
field pointing past the end, kills the process with SIGBUS.  makedumpfile
writing to a disk that fills up leaves exactly such files.  So every range
the headers name is checked against the file size here, before drgn sees
the file, and a damaged file is refused with one line.

A file cut inside its page data is still worth opening: the pages it holds
are intact.  :class:`KdumpLayout` lists the pages whose data lies past the
end (or whose descriptor makedumpfile never filled in) so readers can call
them ``truncated`` instead of asking libkdumpfile for them.

File layout (makedumpfile's ``diskdump_mod.h``): block 0 the
``disk_dump_header``; blocks 1..sub_hdr_size the ``kdump_sub_header`` (with
the VMCOREINFO, ELF note and erase-info ranges); then ``bitmap_blocks``
blocks of bitmaps (first half: pages in RAM, second half: pages dumped);
then one 24-byte ``page_desc`` per dumped page; then the page data.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from dataclasses import dataclass, field
from typing import IO, Iterator, List, Optional, Tuple

from kcoretool.errors import CoreFormatError

__all__ = ("KdumpLayout", "check_kdump", "HDR", "SUB")

# struct disk_dump_header: signature[8], header_version, utsname (6 x 65),
# timeval (aligned to 8), status, block_size, sub_hdr_size, bitmap_blocks,
# max_mapnr, total_ram_blocks, device_blocks, written_blocks, current_cpu,
# nr_cpus.
HDR = struct.Struct("<8si390s6xqqIiiIIIIIIi")
# struct kdump_sub_header: phys_base, dump_level, split, start_pfn, end_pfn,
# offset/size of vmcoreinfo (v3), note (v4), eraseinfo (v5), then
# start_pfn_64, end_pfn_64, max_mapnr_64 (v6).
SUB = struct.Struct("<QiiQQQQQQQQQQQ")
# struct page_desc: offset (off_t), size, flags, page_flags.
DESC = struct.Struct("<qIIQ")
#: DUMP_DH_COMPRESSED_INCOMPLETE: makedumpfile ran out of space (ENOSPC).
STATUS_INCOMPLETE = 0x8
MAX_BITMAP = 1 << 30  # 1 GiB of bitmap = 8 Gi pages = 32 TiB: beyond that, damaged
MAX_NOTE = 1 << 26  # ELF notes of 64 MiB would be ~100,000 CPUs


@dataclass
class KdumpLayout:
    """Where things are in a kdump file, all checked against its size."""

    file_size: int
    header_version: int
    status: int
    block_size: int
    sub_hdr_size: int
    bitmap_blocks: int
    max_mapnr: int
    #: the sub-header's fields, or None before header version 2
    sub: Optional[Tuple[int, ...]]
    #: file offset of the first page descriptor, and how many there are
    desc_offset: int
    dumped_pages: int
    #: the second bitmap (which pages were dumped), max_mapnr bits used
    bitmap: bytes = b""
    #: runs [first_pfn, end_pfn) of dumped pages whose data the file lacks
    truncated: List[Tuple[int, int]] = field(default_factory=list)
    truncated_pages: int = 0
    #: how many bytes past the file's end the last page's data needs
    missing_bytes: int = 0

    @property
    def incomplete(self) -> bool:
        return bool(self.truncated_pages or self.status & STATUS_INCOMPLETE)

    def first_truncated(self, first_pfn: int, end_pfn: int) -> Optional[int]:
        """The first truncated pfn in [first_pfn, end_pfn), if any."""
        i = max(0, bisect.bisect_right(self._starts, first_pfn) - 1)
        for s, e in self.truncated[i:]:
            if s >= end_pfn:
                return None
            if e > first_pfn:
                return max(s, first_pfn)
        return None

    @property
    def _starts(self) -> List[int]:
        starts = self.__dict__.get("_starts_cache")
        if starts is None or len(starts) != len(self.truncated):
            starts = [s for s, _ in self.truncated]
            self.__dict__["_starts_cache"] = starts
        return starts

    def describe_incomplete(self) -> str:
        """One phrase for ``info``: what is missing."""
        parts = []
        if self.truncated_pages:
            parts.append(f"{self.truncated_pages} of {self.dumped_pages} dumped pages lie past the "
                         f"end of the file ({_mib(self.truncated_pages * self.block_size)} missing")
            if self.missing_bytes:
                parts[-1] += f"; the file is {self.missing_bytes} bytes short"
            parts[-1] += ")"
        if self.status & STATUS_INCOMPLETE:
            parts.append("makedumpfile marked it incomplete (it ran out of space)")
        return "; ".join(parts)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n // 1024} KiB"


def _cut(path: str, size: int, needed: int, what: str) -> CoreFormatError:
    """The issue's form; ``what`` (the structure cut) is for --debug readers."""
    err = CoreFormatError(f"{path}: kdump file truncated at {size} bytes; its header says {needed} "
                          "\u2014 the dump is incomplete")
    err.what = what  # type: ignore[attr-defined]
    return err


def _bad(path: str, what: str) -> CoreFormatError:
    return CoreFormatError(f"{path}: kdump header is damaged: {what}; the file cannot be read")


def _popcount(bitmap: bytes, nbits: int) -> int:
    whole, rest = divmod(nbits, 8)
    n = int.from_bytes(bitmap[:whole], "little").bit_count() if hasattr(int, "bit_count") else \
        bin(int.from_bytes(bitmap[:whole], "little")).count("1")
    if rest and whole < len(bitmap):
        n += bin(bitmap[whole] & ((1 << rest) - 1)).count("1")
    return n


def _dumped_pfns(bitmap: bytes, limit: int) -> Iterator[int]:
    """The pfns the bitmap marks as dumped, in order (whole bytes at a time:
    dumps are mostly long runs of 0x00 or 0xff)."""
    for byte_i, byte in enumerate(bitmap):
        if not byte:
            continue
        base = byte_i * 8
        if base >= limit:
            return
        for bit in range(8):
            if byte >> bit & 1 and base + bit < limit:
                yield base + bit


def check_kdump(path: str, f: IO[bytes], file_size: int) -> KdumpLayout:
    """Check every structure of a kdump file against ``file_size``.

    :raises CoreFormatError: one line naming what is cut short or damaged.
    """
    f.seek(0)
    head = f.read(HDR.size)
    if len(head) < HDR.size:
        raise _cut(path, file_size, HDR.size, "the disk_dump_header")
    (_sig, version, _uts, _ts_sec, _ts_usec, status, block_size, sub_hdr_size, bitmap_blocks,
     max_mapnr, _ram, _dev, _written, _cur, _nr_cpus) = HDR.unpack(head)
    if block_size <= 0 or block_size & (block_size - 1) or block_size > 1 << 20 or block_size < 512:
        raise _bad(path, f"block size {block_size} is not a power of two between 512 and 1 MiB")
    if version < 1 or version > 64:
        raise _bad(path, f"header version {version} is not one makedumpfile writes (1-6)")
    if file_size < block_size:
        raise _cut(path, file_size, block_size, "the disk_dump_header block")
    if sub_hdr_size < 0 or sub_hdr_size > 1 << 16:
        raise _bad(path, f"sub_hdr_size {sub_hdr_size:#x} blocks")
    sub_end = (1 + sub_hdr_size) * block_size
    if sub_end > file_size:
        raise _cut(path, file_size, sub_end, "the kdump_sub_header")
    sub: Optional[Tuple[int, ...]] = None
    if version >= 2 and sub_hdr_size > 0:
        f.seek(block_size)
        raw = f.read(SUB.size)
        if len(raw) == SUB.size:
            sub = SUB.unpack(raw)
        elif len(raw) < min(SUB.size, sub_hdr_size * block_size):
            raise _cut(path, file_size, block_size + SUB.size, "the kdump_sub_header")
    if sub is not None:
        ranges = []
        if version >= 3:
            ranges.append(("VMCOREINFO", sub[5], sub[6]))
        if version >= 4:
            ranges.append(("ELF note", sub[7], sub[8]))
        if version >= 5:
            ranges.append(("erase info", sub[9], sub[10]))
        for what, off, size in ranges:
            _check_range(path, file_size, what, off, size)
        if version >= 6 and sub[13]:
            max_mapnr = sub[13]
    if bitmap_blocks == 0 or bitmap_blocks % 2:
        raise _bad(path, f"bitmap_blocks {bitmap_blocks} (it is two bitmaps of equal size)")
    bitmap_len = bitmap_blocks * block_size
    if bitmap_len > MAX_BITMAP:
        raise _bad(path, f"bitmap of {bitmap_len} bytes (more than 32 TiB of memory)")
    bitmap_end = sub_end + bitmap_len
    if bitmap_end > file_size:
        raise _cut(path, file_size, bitmap_end, "the page bitmaps")
    if max_mapnr > bitmap_len // 2 * 8:
        raise _bad(path, f"max_mapnr {max_mapnr:#x} pages do not fit its {bitmap_len // 2}-byte bitmap")
    f.seek(sub_end + bitmap_len // 2)
    bitmap = f.read(bitmap_len // 2)
    dumped = _popcount(bitmap, max_mapnr)
    desc_end = bitmap_end + dumped * DESC.size
    if desc_end > file_size:
        raise _cut(path, file_size, desc_end, f"{dumped} page descriptors")
    layout = KdumpLayout(file_size, version, status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr,
                         sub, bitmap_end, dumped, bitmap)
    _check_descriptors(path, f, layout, desc_end)
    return layout


def _check_range(path: str, file_size: int, what: str, off: int, size: int) -> None:
    if not off and not size:
        return
    if size > MAX_NOTE or off >= 1 << 62:
        raise _bad(path, f"its {what} is {size:#x} bytes at offset {off:#x}")
    if off + size > file_size:
        raise _cut(path, file_size, off + size, f"the {what} at {off:#x}")


def _check_descriptors(path: str, f: IO[bytes], layout: KdumpLayout, desc_end: int) -> None:
    """Every page descriptor: a size no bigger than a page, an offset in the
    file.  A page whose data lies past the end of the file, or whose
    descriptor was never filled in (size 0), is ``truncated``."""
    if not layout.dumped_pages:
        return
    bs, size = layout.block_size, layout.file_size
    f.seek(layout.desc_offset)
    raw = f.read(layout.dumped_pages * DESC.size)
    words = array("q")
    words.frombytes(raw)
    offsets = words[0::3]
    sizes = array("Q", (x & 0xFFFFFFFF for x in words[1::3]))
    biggest = max(sizes)
    if biggest > bs:
        raise _bad(path, f"page descriptor {sizes.index(biggest)} says {biggest:#x} bytes for a {bs}-byte page")
    lowest = min(offsets)
    if lowest < 0:
        raise _bad(path, f"page descriptor {offsets.index(lowest)} has the negative offset {lowest:#x}")
    if min(sizes) and max(offsets) <= size - bs:
        return  # the common case: every page's data is in the file
    # Only descriptors near or past the end, or empty, need a closer look.
    suspects = [i for i, off in enumerate(offsets) if off > size - bs or not sizes[i]]
    bad = {i for i in suspects if not sizes[i] or offsets[i] + sizes[i] > size}
    if not bad:
        return
    need = max([size] + [offsets[i] + sizes[i] for i in bad])
    missing: List[List[int]] = []
    for i, pfn in enumerate(_dumped_pfns(layout.bitmap, layout.max_mapnr)):
        if i in bad:
            if missing and missing[-1][1] == pfn:
                missing[-1][1] = pfn + 1
            else:
                missing.append([pfn, pfn + 1])
    layout.truncated = [(s, e) for s, e in missing]
    layout.truncated_pages = len(bad)
    layout.missing_bytes = need - size
