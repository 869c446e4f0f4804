"""The task-memory model on synthetic kernels (issue 13): every VMA layout
(6.0's vm_next list, 6.1's maple tree, 6.4-6.14's lock + detached flag,
6.15+'s refcount) named and printed as /proc/PID/maps prints it.  The
kernel layer's walks are in tests/kernel/test_task.py and test_maple.py,
the user reader in tests/reader/test_uread.py."""

from __future__ import annotations

import pytest

from kcoretool.api import from_program
from kcoretool.errors import KcoreToolError
from kcoretool.model.task import VMA_LOCK_OFFSET, VmaLock
from tests.synth.tasks import LAYOUTS, demo_process


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
