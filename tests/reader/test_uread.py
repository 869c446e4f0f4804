"""The user reader (reader/uread.py): page states through a task's own page
tables, and live reads validated like a seqlock read section (issue 27;
the racing mm of tests/reader/test_uread_races.py tests the rules)."""

from __future__ import annotations

import struct

from kcoretool.reader.pagetable import PageTableWalker
from kcoretool.reader.uread import UserReader, decode_swap_entry
from tests import ptbuild


class _Vma:
    def __init__(self, start, end, file=0, pgoff=0):
        self.start, self.end, self.file, self.pgoff = start, end, file, pgoff
        self.address, self.flags = start, 0


class _Vmas:
    """A uread.VmaIndex over fixed VMAs."""

    def __init__(self, vmas):
        self.vmas = vmas

    def find(self, addr):
        return next((v for v in self.vmas if v.start <= addr < v.end), None)

    def vma_range(self, addr):
        v = self.find(addr)
        if v is not None:
            return v, v.start, v.end
        return (None, max((v.end for v in self.vmas if v.end <= addr), default=0),
                min((v.start for v in self.vmas if v.start > addr), default=1 << 64))


def _pte_table(m, root, vaddr):
    t = root
    for shift in (39, 30, 21):
        e = struct.unpack_from("<Q", m.pages[t], ((vaddr >> shift) & 511) * 8)[0]
        t = e & ~0xFFF & ((1 << 52) - 1) & ~(1 << 63)
    return t


def test_user_reader_states():
    m, root, map4k, map2m, _ = ptbuild.build()
    base = 0x7F0000000000
    m.write(0x200000, b"A" * 4096)
    map4k(base, 0x200000)                      # data
    map4k(base + 0x1000, 0x300000)             # zero page (pfn 0x300)
    map4k(base + 0x2000, 0x999000)             # excluded: never written
    t = _pte_table(m, root, base)
    swap = (3 << 59) | ((~(0x1234 << 9)) & ((1 << 59) - 1) & ~0x1FF)   # type 3, offset 0x1234
    m.set(t, 3, swap)
    m.write(0x400000, b"N" * 4096)
    m.set(t, 4, ((~0x400000) & ((1 << 52) - 1) & ~0xFFF) | 0x100)       # PROT_NONE, PFN inverted
    # page 5: pte_none in an anonymous VMA
    m.write(0x1000000, bytes(range(256)) * (2 << 20 >> 8))
    map2m(base + 0x200000, 0x1000000)          # THP
    assert decode_swap_entry(swap) == (3, 0x1234)
    vmas = _Vmas([_Vma(base, base + 0x6000), _Vma(base + 0x200000, base + 0x400000),
                  _Vma(base + 0x600000, base + 0x602000, file=1, pgoff=10)])
    m.write(0x500000, b"C" * 4096)

    def cache(vma, index):
        return ("page", 0x500000) if index == 10 else None

    r = UserReader(vmas, PageTableWalker(m.read, root), m.read, page_cache=cache, zero_pfns=(0x300,),
                   nr_swapfiles=4)
    out = __import__("io").BytesIO()
    rep = r.read(base, 0x602000, out)
    data = out.getvalue()
    got = [(run.vaddr - base, run.size, run.state, run.detail) for run in rep.runs]
    assert got == [
        (0, 0x1000, "data", None),
        (0x1000, 0x1000, "zero-page", None),
        (0x2000, 0x1000, "excluded", None),
        (0x3000, 0x1000, "swapped", "swap type 3 offset 0x1234"),
        (0x4000, 0x1000, "data", None),
        (0x5000, 0x1000, "not-present", None),
        (0x6000, 0x1FA000, "no-vma", None),
        (0x200000, 0x200000, "data", "2M page"),
        (0x400000, 0x200000, "no-vma", None),
        (0x600000, 0x1000, "data", "page cache"),
        (0x601000, 0x1000, "file-not-cached", None),
    ]
    assert data[:4096] == b"A" * 4096 and data[0x4000:0x5000] == b"N" * 4096
    assert data[0x200000:0x400000] == bytes(range(256)) * (2 << 20 >> 8)
    assert data[0x600000:0x601000] == b"C" * 4096
    assert data[0x1000:0x4000] == bytes(0x3000)


def test_swap_type_beyond_nr_swapfiles_is_named():
    m, root, map4k, _, _ = ptbuild.build()
    map4k(0x1000, 0x200000)
    t = _pte_table(m, root, 0x1000)
    m.set(t, 1, (29 << 59) | 0x3E00)
    r = UserReader(_Vmas([_Vma(0x1000, 0x2000)]), PageTableWalker(m.read, root), m.read, nr_swapfiles=1)
    state, _, _, detail = r.classify(_Vma(0x1000, 0x2000), 0x1000)
    assert state == "swapped" and "migration/device" in detail


def _torn_read_setup():
    """A 2-page anonymous VMA across a reader chunk boundary, and a process
    that unmaps and maps it again alike (same address, same struct) between
    the reader's two chunks, with new bytes."""
    from kcoretool.reader.uread import CHUNK_PAGES

    m, root, map4k, _, _ = ptbuild.build()
    base = 0x7F0000000000 + CHUNK_PAGES * 4096 - 0x1000
    for phys, fill in ((0x200000, b"1"), (0x201000, b"1"), (0x300000, b"2"), (0x301000, b"2")):
        m.write(phys, fill * 4096)
    map4k(base, 0x200000)
    map4k(base + 0x1000, 0x201000)
    vma = _Vma(base, base + 0x2000)
    return m, root, map4k, base, _Vmas([vma])


class _Live:
    """A LiveMm over fixed VMAs whose guard is ``guard()``."""

    def __init__(self, vmas, guard):
        self.vmas, self.guard = vmas, guard

    def lookup(self, addr):
        v = self.vmas.find(addr)
        return (v, v.start, v.end) if v is not None else (None, 0, 1 << 64)

    def unusable(self, vma, guard):
        return None


def test_live_read_is_not_spliced_across_chunks():
    """Each chunk alone is consistent, but the mm moved between them: the
    read is retried whole, never half one mapping and half the next."""
    m, root, map4k, base, vmas = _torn_read_setup()
    calls = {"n": 0, "seq": 1}
    walker = PageTableWalker(m.read, root)

    def guard():
        calls["n"] += 1
        if calls["n"] == 2:  # the first read's end: the process has mapped the region again
            map4k(base, 0x300000)
            map4k(base + 0x1000, 0x301000)
            calls["seq"] = 3
        return calls["seq"]

    r = UserReader(vmas, walker, m.read, live=_Live(vmas, guard))
    out = __import__("io").BytesIO()
    rep = r.read(base, 0x2000, out)
    assert out.getvalue() == b"2" * 0x2000
    assert rep.retries == 1 and [run.state for run in rep.runs] == ["data"]


def test_live_read_of_an_ever_changing_mm_is_raced():
    m, root, _, base, vmas = _torn_read_setup()
    seq = iter(range(10**6))
    r = UserReader(vmas, PageTableWalker(m.read, root), m.read, live=_Live(vmas, lambda: next(seq)))
    out = __import__("io").BytesIO()
    rep = r.read(base, 0x2000, out)
    assert out.getvalue() == bytes(0x2000)
    assert [(run.state, run.size) for run in rep.runs] == [("raced", 0x2000)]


def test_live_read_longer_than_whole_limit_streams_chunks(monkeypatch):
    """Above WHOLE_READ_LIMIT each chunk is checked alone: a guard that moves
    once costs one chunk one retry, not the whole read."""
    from kcoretool.reader import uread

    monkeypatch.setattr(uread, "WHOLE_READ_LIMIT", 0x1000)
    m, root, _, base, vmas = _torn_read_setup()
    calls = {"n": 0}

    def guard():
        calls["n"] += 1
        return 1 if calls["n"] < 2 else 2

    r = UserReader(vmas, PageTableWalker(m.read, root), m.read, live=_Live(vmas, guard))
    out = __import__("io").BytesIO()
    rep = r.read(base, 0x2000, out)
    assert out.getvalue() == b"1" * 0x2000
    assert rep.retries == 1 and [run.state for run in rep.runs] == ["data"]


def test_the_user_reader_does_not_call_back_into_the_model():
    """read --pid finds the VMAs of its range through the kernel layer
    (kernel.task.MmView): no whole VMA list with names, no model import."""
    from tests.test_architecture import import_graph

    assert not [m for m in import_graph()["kcoretool.reader.uread"] if m.startswith("kcoretool.model")]
