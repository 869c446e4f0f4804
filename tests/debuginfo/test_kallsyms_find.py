"""find_kallsyms_tables: a pre-6.0 kernel's kallsyms tables found in its
image by their structure (no VMCOREINFO symbols), on images built here in
scripts/kallsyms.c's layout; the real 5.10 image is checked in the lab
(tests/lab/test_btf.py)."""

from __future__ import annotations

import struct
from typing import Dict, List, Tuple

import pytest

from kcoretool.debuginfo.kallsyms import KallsymsTable
from kcoretool.debuginfo.kallsyms_find import find_kallsyms_tables

STEXT = 0xFFFFFFFF81000000


def _pad8(b: bytes) -> bytes:
    return b + bytes(-len(b) % 8)


def build_image(symbols: List[Tuple[int, str]], rodata_at: int = 0x400000,
                decoy: bool = True) -> Tuple[bytes, Dict[str, int]]:
    """An image whose tables start ``rodata_at`` bytes after _stext, laid
    out as scripts/kallsyms.c writes them up to v6.1 (absolute per-CPU)."""
    tokens = [bytes([i]) if 32 <= i < 127 else bytes([0x61 + i % 26, 0x62 + i % 20]) for i in range(256)]
    tokens[0x80] = b"vmalloc"
    table = b""
    index = []
    for t in tokens:
        index.append(len(table))
        table += t + b"\0"
    names = b""
    markers = []
    for i, (_, name) in enumerate(symbols):
        if not i % 256:
            markers.append(len(names))
        enc = name.encode().replace(b"vmalloc", b"\x80")
        names += bytes([len(enc)]) + enc
    offsets = [a if a < STEXT else -(a - STEXT) - 1 for a, _ in symbols]
    parts = [
        ("kallsyms_offsets", _pad8(struct.pack(f"<{len(offsets)}i", *offsets))),
        ("kallsyms_relative_base", struct.pack("<Q", STEXT)),
        ("kallsyms_num_syms", _pad8(struct.pack("<I", len(symbols)))),
        ("kallsyms_names", _pad8(names)),
        ("kallsyms_markers", _pad8(struct.pack(f"<{len(markers)}I", *markers))),
        ("kallsyms_token_table", _pad8(table)),
        ("kallsyms_token_index", struct.pack("<256H", *index)),
    ]
    image = bytearray(rodata_at)
    if decoy:  # the digit run alone, elsewhere: must not be taken for the table
        image[0x1000:0x1000 + 20] = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00"
    where = {}
    for name, blob in parts:
        where[name] = STEXT + len(image)
        image += blob
    image += bytes(0x2000)
    return bytes(image), where


def symbols(n: int) -> List[Tuple[int, str]]:
    out = [(0x0, "Afixed_percpu_data"), (0x2000, "Dper_cpu_var"), (STEXT, "T_stext")]
    out += [(STEXT + 0x10 * (i + 1), f"tf{i}_vmalloc_{i % 7}") for i in range(n)]
    return out + [(STEXT + 0x10 * (n + 1), "T_end")]


def reader(image: bytes, holes: Tuple[Tuple[int, int], ...] = ()):
    def read(addr: int, size: int) -> bytes:
        off = addr - STEXT
        if off < 0 or off + size > len(image):
            raise ValueError(f"{addr:#x}+{size} outside the image")
        for lo, hi in holes:
            if off < hi and off + size > lo:
                raise ValueError(f"{addr:#x}+{size} touches a hole")
        return image[off:off + size]

    return read


@pytest.mark.parametrize("n", [1, 253, 254, 600, 5000])
def test_finds_every_table(n: int) -> None:
    syms = symbols(n)
    image, where = build_image(syms)
    assert find_kallsyms_tables(reader(image), STEXT) == where
    table = KallsymsTable(reader(image), where, long_names=False)
    assert table.num == len(syms)
    assert table.lookup(STEXT + 0x15) == ("f0_vmalloc_0", STEXT + 0x10, 0x10)
    assert table.name(len(syms) - 1) == syms[-1][1][1:]


def test_unmapped_pages_before_the_tables_are_skipped() -> None:
    # The freed padding between .text and .rodata is not in the dump.
    image, where = build_image(symbols(300), rodata_at=0x300000)
    assert find_kallsyms_tables(reader(image, holes=((0x100000, 0x200000),)), STEXT) == where


def test_tables_that_do_not_check_out_are_refused() -> None:
    image, where = build_image(symbols(300))
    bad = bytearray(image)
    # One marker off by one: the names walk no longer meets it.
    m = where["kallsyms_markers"] - STEXT
    struct.pack_into("<I", bad, m + 4, struct.unpack_from("<I", bad, m + 4)[0] + 1)
    with pytest.raises(LookupError, match="no kallsyms tables in the"):
        find_kallsyms_tables(reader(bytes(bad)), STEXT, limit=8 << 20)
    # _stext not among the symbols: the tables of some other image.
    other = [(a + 0x1000 if a >= STEXT else a, n) for a, n in symbols(300)]
    image, _ = build_image(other)
    with pytest.raises(LookupError, match="after _stext 0xffffffff81000000"):
        find_kallsyms_tables(reader(image), STEXT, limit=8 << 20)
