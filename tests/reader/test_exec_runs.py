"""PageTableWalker.executable_runs() on hand-built tables: NX at any level
hides what is below, RW must hold at every level, 2 MiB and 1 GiB leaves,
4- and 5-level paging, the user half ignored, one read per table page."""

import struct

import pytest

from kcoretool.reader.pagetable import ExecRun, PageTableWalker
from tests.ptbuild import NX, RW, P, build


def _entry(m, root, levels, vaddr, shift):
    """(table, index) of the entry for ``vaddr`` at ``shift`` (tables made by build's helpers)."""
    t = root
    for s in ([48] if levels == 5 else []) + [39, 30, 21, 12]:
        idx = (vaddr >> s) & 511
        if s == shift:
            return t, idx
        t = struct.unpack_from("<Q", m.pages[t], idx * 8)[0] & ~(0xFFF | NX) & ((1 << 52) - 1)
    raise AssertionError


@pytest.mark.parametrize("levels", [4, 5])
def test_executable_runs(levels):
    va = 0xFF11_0000_0000_0000 if levels == 5 else 0xFFFF_C900_0000_0000
    m, root, map4k, map2m, map1g = build(levels)
    for i in range(4):
        map4k(va + i * 0x1000, 0x7000000 + i * 0x1000)
    map4k(va + 0x5000, 0x7100000)
    map2m(va + 0x200000, 0x40000000)
    map1g(va + (1 << 39), 0x80000000)
    map4k(0x7F00_0000_0000, 0x9000000)  # user half: never walked

    def setx(vaddr, shift, rw=True):
        t, i = _entry(m, root, levels, vaddr, shift)
        e = struct.unpack_from("<Q", m.pages[t], i * 8)[0] & ~NX
        m.set(t, i, (e | RW) if rw else (e & ~RW))

    setx(va, 12, rw=False)  # RX
    setx(va + 0x1000, 12, rw=False)  # RX, merged with the first
    setx(va + 0x2000, 12)  # RWX
    setx(va + 0x5000, 12, rw=False)
    setx(va + 0x200000, 21, rw=False)  # a 2 MiB RX leaf
    setx(va + (1 << 39), 30)  # a 1 GiB RWX leaf ...
    t, i = _entry(m, root, levels, va + (1 << 39), 39)
    # ... under a read-only upper level: not writable after all
    m.set(t, i, struct.unpack_from("<Q", m.pages[t], i * 8)[0] & ~RW)
    t, i = _entry(m, root, levels, 0x7F00_0000_0000, 12)
    m.set(t, i, (0x9000000 | P | RW))  # executable, but user half
    w = PageTableWalker(m.read, root, levels=levels)
    m.reads = 0
    runs = w.executable_runs()
    g = 1 << 30
    assert runs == [
        ExecRun(va, va + 0x2000, False, 4096),
        ExecRun(va + 0x2000, va + 0x3000, True, 4096),
        ExecRun(va + 0x5000, va + 0x6000, False, 4096),
        ExecRun(va + 0x200000, va + 0x400000, False, 2 << 20),
        ExecRun(va + (1 << 39), va + (1 << 39) + g, False, g),
    ]
    assert runs[0].size == 0x2000
    # NX on the PMD that maps the first 2 MiB hides its 4 KiB leaves.
    t, i = _entry(m, root, levels, va, 21)
    m.set(t, i, struct.unpack_from("<Q", m.pages[t], i * 8)[0] | NX)
    w.invalidate()
    assert [r.start for r in w.executable_runs()] == [va + 0x200000, va + (1 << 39)]


def test_reads_each_table_once():
    va = 0xFFFF_C900_0000_0000
    m, root, map4k, _m2, _m1 = build(4)
    for i in range(512):
        map4k(va + i * 0x1000, 0x7000000 + i * 0x1000)
    w = PageTableWalker(m.read, root, levels=4, cache_pages=0)
    m.reads = 0
    assert w.executable_runs() == []  # all NX
    assert m.reads == 4  # PGD, PUD, PMD, one PTE table: whole pages, not entries
