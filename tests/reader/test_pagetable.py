"""The page-table walker on hand-built x86_64 tables (4- and 5-level, 2 MiB
and 1 GiB leaves, holes at every level, an SME bit)."""

import pytest

from kcoretool.reader.pagetable import PageTableWalker, kernel_page_table_root
from kcoretool.source.vmcoreinfo import VmcoreInfo

from tests.ptbuild import build

VA = 0xFFFFB3C5C0000000


@pytest.mark.parametrize("levels", [4, 5])
def test_4k_2m_1g_and_holes(levels):
    va = 0xFF11_0000_0000_0000 if levels == 5 else VA
    m, root, map4k, map2m, map1g = build(levels)
    map4k(va, 0x7000000)
    map4k(va + 0x1000, 0x7001000)  # contiguous with the first
    map4k(va + 0x3000, 0x5000000)  # 0x2000 is a hole (guard page)
    map2m(va + 0x200000, 0x40000000)
    map1g(va + 0x40000000, 0x80000000)
    w = PageTableWalker(m.read, root, levels=levels)
    assert w.translate(va + 0x10).phys == 0x7000010
    assert w.translate(va + 0x2000) is None
    t = w.translate(va + 0x200000 + 0x12345)
    assert (t.phys, t.page_size) == (0x40012345, 2 << 20)
    t = w.translate(va + 0x40000000 + 0x1234567)
    assert (t.phys, t.page_size) == (0x81234567, 1 << 30)
    assert w.translate(va + 0x80000000) is None  # nothing at the PUD
    assert list(w.runs(va, 0x5000)) == [
        (va, 0x7000000, 0x2000),
        (va + 0x2000, None, 0x1000),
        (va + 0x3000, 0x5000000, 0x1000),
        (va + 0x4000, None, 0x1000),
    ]
    # An unmapped PMD spans 2 MiB in one step; the huge leaf is one run.
    assert list(w.runs(va + 0x400000, 0x200000)) == [(va + 0x400000, None, 0x200000)]
    assert list(w.runs(va + 0x200000, 0x200000)) == [(va + 0x200000, 0x40000000, 0x200000)]


def test_sme_mask_and_cache():
    sme = 1 << 47
    m, root, map4k, _, _ = build(4, sme=sme)
    for i in range(64):
        map4k(VA + i * 0x1000, 0x9000000 + i * 0x1000)
    w = PageTableWalker(m.read, root, levels=4, sme_mask=sme)
    assert list(w.runs(VA, 64 * 0x1000)) == [(VA, 0x9000000, 64 * 0x1000)]
    # 4 table pages (PGD, PUD, PMD, PTE) read once each for 64 translations.
    assert m.reads == 4
    w.invalidate()
    w.translate(VA)
    assert m.reads == 8


def test_root_from_vmcoreinfo():
    info = VmcoreInfo(
        b"SYMBOL(init_top_pgt)=ffffffff9c40a000\nNUMBER(phys_base)=-1040187392\n"
        b"NUMBER(pgtable_l5_enabled)=0\nNUMBER(sme_mask)=0\n"
    )
    root, levels, sme = kernel_page_table_root(info)
    # __pa_symbol(x) = x - __START_KERNEL_map + phys_base
    assert root == (0xFFFFFFFF9C40A000 - 0xFFFFFFFF80000000 - 1040187392) & ((1 << 64) - 1)
    assert (levels, sme) == (4, 0)
