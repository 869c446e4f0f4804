"""Task memory on synthetic kernels (issue 13): every VMA layout (6.0's
vm_next list, 6.1's maple tree, 6.4-6.14's lock + detached flag, 6.15+'s
refcount), damaged maple trees, and the user reader's page states."""

from __future__ import annotations

import struct

import pytest

from kcoretool.api import from_program
from kcoretool.errors import KcoreToolError
from kcoretool.kernel.maple import mtree_load
from kcoretool.kernel.task import RawVma
from kcoretool.kernel.walk import WalkLog
from kcoretool.model.task import VMA_LOCK_OFFSET, VmaLock
from kcoretool.reader.pagetable import PageTableWalker
from kcoretool.reader.uread import UserReader, decode_swap_entry
from tests import ptbuild
from tests.synth.tasks import LAYOUTS, TaskKernel, TaskSpec, VmaSpec, demo_process


@pytest.mark.parametrize("layout", LAYOUTS)
def test_maps_lines_exactly(layout):
    k, maps = demo_process(layout)
    vl = from_program(k.prog).vmas(100)
    assert vl.maps_text() == maps
    assert vl.warnings == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_task_list(layout):
    k, _ = demo_process(layout)
    tl = from_program(k.prog).tasks()
    assert [(t.pid, t.comm, t.kthread, t.nr_threads, t.state) for t in tl.tasks] == [
        (2, "kthreadd", True, 1, "S"), (100, "prog", False, 3, "S")]
    assert tl.tasks[1].mm.map_count == 8
    threads = from_program(k.prog).tasks(threads=True)
    assert [t.pid for t in threads.tasks] == [2, 100, 101, 102]


def test_lock_states_6_12_gather_window():
    """A VMA gathered by munmap (vms_gather_munmap_vmas) but not yet cleared
    from the tree: still listed, marked detached and write-locked."""
    k, _ = demo_process("6.12")
    K = from_program(k.prog)
    assert K.task_layout().vma_lock == "seq_detached"
    states = {v.start: v.lock for v in K.vmas(100).vmas}
    gathered = states[0x7F0000002000]
    assert (gathered.detached, gathered.write_locked, gathered.describe()) == (True, True, "detached,write-locked")
    assert gathered.vm_lock_seq == gathered.mm_lock_seq == 6
    assert states[0x7F0000000000].describe() == "unlocked"


def test_lock_states_6_15_refcount():
    k, _ = demo_process("6.15")
    K = from_program(k.prog)
    assert K.task_layout().vma_lock == "refcnt" and K.task_layout().mm_lock_seq == "seqcount"
    states = {v.start: v.lock for v in K.vmas(100).vmas}
    assert states[0x7F0000002000].describe() == "detached,write-locked,refcnt=0"
    assert states[0x7F0000000000].describe() == "refcnt=1"
    assert VmaLock("refcnt", refcnt=3).describe() == "read-locked(2),refcnt=3"
    pending = VmaLock("refcnt", refcnt=VMA_LOCK_OFFSET)
    assert pending.detached and pending.describe() == "detached,readers-excluded,refcnt=0x40000000"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_mm_guard_and_vma_rules(layout):
    """What a lockless live read checks (issue 27): the mm's guard words,
    decided once from struct members, and lock_vma_under_rcu()'s refusals."""
    from kcoretool.kernel.task import MmGuard

    k, _ = demo_process(layout)
    K = from_program(k.prog)
    r = K.task_reader()
    lay = K.task_layout()
    assert lay.tlb_gen and lay.vmacache_seq == (layout == "6.0")
    mm = k.mms[100]
    seq = {"6.0": 6, "6.1": None, "6.12": 6, "6.15": 6}[layout]
    assert r.mm_guard(mm) == MmGuard(200, 5, seq)
    raw_mm = r.read_mm(mm)
    got = {}
    for addr in (0x400000, 0x403000, 0x7F0000002000, 0x7F0000002FFF, 0x7FFC00021000):
        v, lo, hi = r.vma_lookup(raw_mm, addr)
        got[addr] = (v and v.start, lo, hi, v and r.vma_unusable(v, mm, r.mm_guard(mm)))
    gathered = "detached" if layout in ("6.12", "6.15") else None
    assert got == {0x400000: (0x400000, 0x400000, 0x401000, None),
                   0x403000: (None, 0x403000, 0x600000, None),
                   0x7F0000002000: (0x7F0000002000, 0x7F0000002000, 0x7F0000003000, gathered),
                   0x7F0000002FFF: (0x7F0000002000, 0x7F0000002000, 0x7F0000003000, gathered),
                   0x7FFC00021000: (None, 0x7FFC00021000, 1 << 64, None)}
    v = r.vma_lookup(raw_mm, 0x400000)[0]
    assert r.vma_unusable(v._replace(mm=mm + 0x1000), mm, r.mm_guard(mm)) == "vm_mm is another mm"
    if layout in ("6.12", "6.15"):
        # write-locked: vm_lock_seq == mm_lock_seq (vma_start_write() in an open write section)
        assert r.vma_unusable(v._replace(lock_seq=6), mm, MmGuard(200, 5, 6)) == "write-locked"
        assert r.vma_unusable(v, mm, MmGuard(200, 5, 6)) is None
    if layout == "6.15":
        assert r.vma_unusable(v._replace(refcnt=VMA_LOCK_OFFSET + 1), mm, MmGuard(200, 5, 6)) == "readers excluded"
        assert r.vma_unusable(v._replace(refcnt=3), mm, MmGuard(200, 5, 6)) is None  # page faults reading it
        k.img.put("mm_struct", mm, mm_lock_seq__sequence=7)  # mmap_lock write-held
        assert r.mm_guard(mm) is None


def test_no_lock_column_before_6_4():
    k, _ = demo_process("6.1")
    v = from_program(k.prog).vmas(100).vmas[0]
    assert v.lock.describe() == "-" and v.lock.write_locked is None and v.lock.detached is None


def test_kernel_thread_and_missing_pid():
    k, _ = demo_process("6.12")
    K = from_program(k.prog)
    with pytest.raises(KcoreToolError, match=r"^pid 2 \(kthreadd\) is a kernel thread: it has no user memory$"):
        K.vmas(2)
    with pytest.raises(KcoreToolError, match=r"^no task with pid 7; Kernel\.tasks\(\) shows them$"):
        K.vmas(7)


def _many(layout: str, n: int) -> TaskKernel:
    k = TaskKernel(layout)
    vmas = [VmaSpec(0x10000000 + i * 0x3000, 0x10000000 + i * 0x3000 + 0x1000) for i in range(n)]
    k.add_task(TaskSpec(100, "many", vmas))
    return k


def test_deep_tree_and_mtree_load():
    k = _many("6.12", 1000)
    K = from_program(k.prog)
    vl = K.vmas(100)
    assert len(vl.vmas) == 1000 and vl.warnings == []
    mt = k.mms[100] + k.img.offsetof("mm_struct", "mm_mt")
    assert (k.img.r64(mt + 16) >> 2) & 0x1F == 4  # height
    for i in (0, 1, 499, 999):
        addr = 0x10000000 + i * 0x3000
        assert mtree_load(k.prog, mt, addr + 0x10) == k.vma_addrs[100][i]
        assert mtree_load(k.prog, mt, addr + 0x1000) is None  # the gap after it


@pytest.mark.parametrize("layout", ["6.0", "6.12"])
def test_vma_lookup_ranges_in_a_big_tree(layout):
    """vma_lookup(): maple tree (mas_walk) or, before 6.1, mm_rb (find_vma's
    descent): the VMA or the gap around any address, with its range."""
    k = _many(layout, 300)
    r = from_program(k.prog).task_reader()
    raw_mm = r.read_mm(k.mms[100])
    base = 0x10000000
    for i in (0, 1, 150, 298, 299):
        a = base + i * 0x3000
        v, lo, hi = r.vma_lookup(raw_mm, a + 0x800)
        assert (v.address, lo, hi) == (k.vma_addrs[100][i], a, a + 0x1000)
        v, lo, hi = r.vma_lookup(raw_mm, a + 0x1800)
        assert v is None and (lo, hi) == (a + 0x1000, a + 0x3000 if i < 299 else 1 << 64)
    assert r.vma_lookup(raw_mm, 0x1000)[1:] == (0, base)


def test_damaged_leaf_is_reported_and_the_walk_goes_on():
    k = _many("6.12", 200)
    leaf = k.maple_nodes[100][3]
    k.img.w64(leaf + 8 + 8 * 2, 5)  # a pivot below its predecessor
    vl = from_program(k.prog).vmas(100)
    assert len(vl.warnings) == 1 and "outside" in vl.warnings[0] and f"{leaf:#x}" in vl.warnings[0]
    # the rest of the damaged leaf is dropped, every other leaf walked
    assert 190 <= len(vl.vmas) < 200
    starts = [v.start for v in vl.vmas]
    assert starts == sorted(starts)


def test_cycle_and_bad_node_type():
    k = _many("6.1", 200)
    nodes = k.maple_nodes[100]
    root = nodes[-1]
    first_child = k.img.r64(root + 80)
    k.img.w64(root + 80 + 8, first_child)  # two slots, one child: a cycle
    k.img.w64(root + 80 + 16, (nodes[2] | 7 << 3 | 4))  # type 7: no such node
    vl = from_program(k.prog).vmas(100)
    text = "\n".join(vl.warnings)
    assert "cycle" in text and "node type 7" in text
    assert 50 < len(vl.vmas) < 200


def test_vm_next_list_cycle_is_bounded():
    k = _many("6.0", 10)
    a = k.vma_addrs[100]
    k.img.w64(a[5] + k.img.offsetof("vm_area_struct", "vm_next"), a[2])
    vl = from_program(k.prog).vmas(100)
    assert len(vl.vmas) == 6 and "list stops" in vl.warnings[0]


# -- the user reader ----------------------------------------------------------------


class _Vma:
    def __init__(self, start, end, file=0, pgoff=0):
        self.start, self.end, self.file, self.pgoff = start, end, file, pgoff
        self.address, self.flags = start, 0


class _Vmas:
    def __init__(self, vmas):
        self.vmas = vmas

    def find(self, addr):
        return next((v for v in self.vmas if v.start <= addr < v.end), None)


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


def test_raw_vma_tuple_fields():
    assert RawVma._fields[:3] == ("address", "start", "end")
    assert WalkLog().summary() == []


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
