"""Maple trees (kernel/maple.py): one bounded, validated walker -- for
VMAs (mm->mm_mt) and for execmem's ROX cache alike -- and lookups."""

from __future__ import annotations

from kcoretool.api import from_program
from kcoretool.kernel.maple import mtree_load
from tests.synth.tasks import TaskKernel, TaskSpec, VmaSpec


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
