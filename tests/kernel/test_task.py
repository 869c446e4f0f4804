"""The kernel layer's task walks on synthetic kernels: tasks, mms and VMAs
read in one pass (names included), the lockless reader's guard and VMA
rules (issue 27), lookups by address (maple tree, mm_rb, vm_next list)."""

from __future__ import annotations

import pytest

from kcoretool.api import from_program
from kcoretool.kernel.task import MmGuard, MmView, NamedVma, RawVma, VmaName
from kcoretool.kernel.walk import WalkLog
from kcoretool.model.task import VMA_LOCK_OFFSET
from tests.synth.tasks import LAYOUTS, TaskKernel, TaskSpec, VmaSpec, demo_process


def _many(layout: str, n: int) -> TaskKernel:
    k = TaskKernel(layout)
    vmas = [VmaSpec(0x10000000 + i * 0x3000, 0x10000000 + i * 0x3000 + 0x1000) for i in range(n)]
    k.add_task(TaskSpec(100, "many", vmas))
    return k


@pytest.mark.parametrize("layout", LAYOUTS)
def test_mm_guard_and_vma_rules(layout):
    """What a lockless live read checks (issue 27): the mm's guard words,
    decided once from struct members, and lock_vma_under_rcu()'s refusals."""
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


def test_vm_next_list_cycle_is_bounded():
    k = _many("6.0", 10)
    a = k.vma_addrs[100]
    k.img.w64(a[5] + k.img.offsetof("vm_area_struct", "vm_next"), a[2])
    vl = from_program(k.prog).vmas(100)
    assert len(vl.vmas) == 6 and "list stops" in vl.warnings[0]


def test_raw_vma_tuple_fields():
    assert RawVma._fields[:3] == ("address", "start", "end")
    assert WalkLog().summary() == []




@pytest.mark.parametrize("layout", LAYOUTS)
def test_tasks_and_mm_vmas_in_one_pass(layout):
    """The kernel layer hands over raw records -- each task with its mm and
    parent, each VMA with its name -- and the model only builds from them."""
    k, maps = demo_process(layout)
    r = from_program(k.prog).task_reader()
    log = WalkLog()
    recs = r.tasks(log)
    assert [(t.task.pid, t.parent_pid, t.nr_threads, t.mm and t.mm.address) for t in recs] == [
        (2, 0, 1, None), (100, 0, 3, k.mms[100])]
    prog = r.find_task(100, log)
    assert prog is not None and prog.pid == 100 and r.find_task(7, log) is None
    got = r.mm_vmas(prog, log)
    assert log.summary() == []
    assert got.mm.address == k.mms[100]
    assert all(isinstance(v, NamedVma) and isinstance(v.name, VmaName) for v in got.vmas)
    assert [v.name.name for v in got.vmas] == [line[73:] for line in maps.splitlines()]
    assert [(v.raw.start, v.raw.end) for v in got.vmas] == [
        (int(line[:line.index("-")], 16), int(line[line.index("-") + 1:line.index(" ")], 16))
        for line in maps.splitlines()]


@pytest.mark.parametrize("layout", ["6.0", "6.1", "6.12"])
def test_mm_view_finds_the_vmas_of_a_range(layout):
    """What ``read --pid`` asks for: the VMA (or the gap up to the next one)
    at an address, found by lookup -- never the whole list with names."""
    k = _many(layout, 300)
    r = from_program(k.prog).task_reader()
    raw_mm = r.read_mm(k.mms[100])
    view = MmView(r, raw_mm, None)
    base = 0x10000000
    for i in (0, 1, 150, 299):
        a = base + i * 0x3000
        v, lo, hi = view.vma_range(a + 0x10)
        assert (v.address, lo, hi) == (k.vma_addrs[100][i], a, a + 0x1000)
        v, _, hi = view.vma_range(a + 0x1000)
        assert v is None and hi == (a + 0x3000 if i < 299 else 1 << 64)
    assert view.vma_range(0)[0] is None and view.vma_range(0)[2] == base


def test_mm_view_of_a_damaged_tree_falls_back_to_the_walk():
    """A lookup that meets a damaged node (here a leaf whose parent is not
    the root) still finds what a whole walk finds."""
    k = _many("6.12", 200)
    r = from_program(k.prog).task_reader()
    raw_mm = r.read_mm(k.mms[100])
    leaf = k.maple_nodes[100][3]
    k.img.w64(leaf, leaf | 0xC)  # ma_dead_node(): the leaf's parent is itself
    view = MmView(r, raw_mm, None)
    walked = {v.start: v for v in r.vmas(raw_mm, WalkLog(), "test")}
    for a in sorted(walked)[::7]:
        v, lo, hi = view.vma_range(a)
        assert (v.address, lo, hi) == (walked[a].address, a, a + 0x1000)
