"""The page-table reader on a hand-built kernel: every page state, exact
bytes, bounded live retries."""

import io
import struct

from kcoretool.model.area import Area, VmapBlock, VmStruct
from kcoretool.model.vmalloc import VmallocModel
from kcoretool.reader.pagetable import PageTableWalker
from kcoretool.reader.vread import MAX_ATTEMPTS, VmallocReader
from tests.ptbuild import build

PS = 0x1000
VA = 0xFFFFB3C5C0000000


def tag(area_id: int, page: int) -> bytes:
    """Every 8 bytes of a test page: area id and page index."""
    return struct.pack("<Q", 0x4B43 << 48 | area_id << 32 | page) * (PS // 8)


def vm(addr, size, flags=0x2, nr_pages=0, caller=0xFFFFFFFFC0001234):
    return VmStruct(address=addr ^ 0xABC0, addr=addr, size=size, flags=flags, flag_names=(),
                    nr_pages=nr_pages, page_order=0, phys_addr=0, caller=caller,
                    caller_symbol="kct_init+0x34/0x100 [kcoretool_test]", requested_size=None,
                    pages_array=0)


def area(start, npages, kind, v=None, lazy=False, block=None):
    return Area(start=start, end=start + npages * PS, kind=kind, lazy=lazy, va_flags=None, node=None,
                flags_node_id=None, vm=v, vmap_block=block, vmap_area=start ^ 0x5550)


class Kernel:
    """Areas laid out from VA:
      A  vmalloc, 3 data pages + guard            id 1   VA+0x0000
         hole of 2 pages                                 VA+0x4000
      B  vm_map_ram (own area), page 1 unmapped   id 2   VA+0x6000
      C  vmap block of 8 pages: used [0,1) [2,4),
         dirty 1 and 4, unused 5..7                id 3   VA+0x8000
      D  ioremap 1 page + guard                   id 4   VA+0x10000
      E  lazily freed (2 pages, unmapped)                VA+0x12000
      F  vmalloc whose page 1 is not in the dump   id 6   VA+0x14000
    """

    def __init__(self):
        m, root, map4k, _, _ = build(4)
        self.mem = m
        self.phys_next = 0x10000000
        self.map4k = map4k

        def back(v, area_id, page):
            p = self.phys_next
            self.phys_next += PS
            m.write(p, tag(area_id, page))
            map4k(v, p)
            return p

        self.A = area(VA, 4, "vmalloc", vm(VA, 4 * PS, nr_pages=3))
        for i in range(3):
            back(VA + i * PS, 1, i)
        self.B = area(VA + 0x6000, 2, "vm_map_ram")
        back(VA + 0x6000, 2, 0)
        self.C = area(VA + 0x8000, 8, "vmap_block", block=0xFFFF8880DEAD0000)
        for i in (0, 2, 3):
            back(VA + 0x8000 + i * PS, 3, i)
        self.block = VmapBlock(start=VA + 0x8000, end=VA + 0x10000, address=0xFFFF8880DEAD0000, cpu=0,
                               cpu_source="vmap_block.cpu", free=3, dirty=2, dirty_min=1, dirty_max=5,
                               bits=8, used=((0, 1), (2, 4)), used_source="used_map", notes=())
        self.D = area(VA + 0x10000, 2, "ioremap", vm(VA + 0x10000, 2 * PS, flags=0x1))
        map4k(VA + 0x10000, 0xFED00000)  # device memory: never read
        self.E = area(VA + 0x12000, 2, "lazy", lazy=True)
        self.F = area(VA + 0x14000, 3, "vmalloc", vm(VA + 0x14000, 3 * PS, nr_pages=2))
        back(VA + 0x14000, 6, 0)
        map4k(VA + 0x15000, 0x7FF00000)  # mapped, but that page was filtered out
        self.model = VmallocModel(
            layout=None, release="test", page_size=PS, vmalloc_start=VA, vmalloc_end=VA + (32 << 40),
            modules_start=0xFFFFFFFFC0000000, modules_end=0xFFFFFFFFFF000000,
            areas=[self.A, self.B, self.C, self.D, self.F], walk_order=[], lazy=[self.E], pooled=[],
            blocks=[self.block], holes=None, lazy_nr=2, lazy_max_pages=32768, warnings=[])
        self.walker = PageTableWalker(m.read, root)

    def reader(self, **kw):
        return VmallocReader(self.model, self.mem.read, self.walker, **kw)


def read(reader, addr, size):
    sink = io.BytesIO()
    report = reader.read(addr, size, sink)
    assert len(sink.getvalue()) == size
    return sink.getvalue(), report


def runs(report):
    return [(r.vaddr - VA, r.size, r.state) for r in report.runs]


def test_whole_range_states_and_bytes():
    k = Kernel()
    data, report = read(k.reader(), VA, 0x17000)
    assert runs(report) == [
        (0x0, 0x3000, "data"),
        (0x3000, 0x1000, "guard"),
        (0x4000, 0x2000, "hole"),
        (0x6000, 0x1000, "data"),
        (0x7000, 0x1000, "unmapped"),
        (0x8000, 0x1000, "data"),
        (0x9000, 0x1000, "block-dirty"),
        (0xA000, 0x2000, "data"),
        (0xC000, 0x1000, "block-dirty"),
        (0xD000, 0x3000, "block-unused"),
        (0x10000, 0x1000, "ioremap"),
        (0x11000, 0x1000, "guard"),
        (0x12000, 0x2000, "lazy"),
        (0x14000, 0x1000, "data"),
        (0x15000, 0x1000, "excluded"),
        (0x16000, 0x1000, "guard"),
    ]
    page = lambda i: data[i * PS:(i + 1) * PS]
    assert [page(i) == tag(1, i) for i in range(3)] == [True] * 3
    # Block pieces read their own pages -- not the block's first page, as
    # 6.4+'s vmap_ram_vread_iter() returns through /proc/kcore.
    assert page(8) == tag(3, 0) and page(10) == tag(3, 2) and page(11) == tag(3, 3)
    zero_pages = [3, 4, 5, 7, 9, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22]
    assert all(page(i) == bytes(PS) for i in zero_pages)
    assert page(20) == tag(6, 0)
    assert report.pages_by_state()["data"] == 8


def test_data_runs_carry_physical_addresses():
    k = Kernel()
    _, report = read(k.reader(), VA, 0x3000)
    assert [(r.state, r.phys) for r in report.runs] == [("data", 0x10000000)]


def test_unaligned_read_inside_a_piece():
    k = Kernel()
    data, report = read(k.reader(), VA + 0xA000 + 8, 0x1000)
    assert data == tag(3, 2)[8:] + tag(3, 3)[:8]
    assert runs(report) == [(0xA008, 0x1000, "data")]


def test_force_io_reads_device_pages_only_when_asked():
    k = Kernel()
    _, report = read(k.reader(), VA + 0x10000, PS)
    assert runs(report) == [(0x10000, PS, "ioremap")]
    assert 0xFED00000 not in k.mem.pages  # never touched
    _, report = read(k.reader(force_io=True, missing_state="unreadable"), VA + 0x10000, PS)
    assert runs(report) == [(0x10000, PS, "unreadable")]


def test_block_without_used_map_asks_the_page_tables():
    k = Kernel()
    k.block.used = None  # 5.4-6.2 kernels have no used_map
    _, report = read(k.reader(), VA + 0x8000, 0x8000)
    assert runs(report) == [
        (0x8000, 0x1000, "data"), (0x9000, 0x1000, "block-unused"),
        (0xA000, 0x2000, "data"), (0xC000, 0x4000, "block-unused")]


class Revalidator:
    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def __call__(self, area):
        self.calls += 1
        return self.script.pop(0)(area) if self.script else area


def changed(area):
    import dataclasses

    return dataclasses.replace(area, vm=dataclasses.replace(area.vm, caller=area.vm.caller + 1))


def test_live_retry_succeeds_after_a_change():
    k = Kernel()
    r = Revalidator([changed])
    data, report = read(k.reader(revalidate=r), VA, 0x3000)
    assert report.retries == 1
    assert runs(report) == [(0x0, 0x3000, "data")]
    assert data == tag(1, 0) + tag(1, 1) + tag(1, 2)


def test_live_area_gone_is_raced_not_data():
    k = Kernel()
    r = Revalidator([lambda a: None])
    data, report = read(k.reader(revalidate=r), VA, 0x4000)
    assert runs(report) == [(0x0, 0x4000, "raced")]
    assert data == bytes(0x4000)
    assert report.retries == 1


def test_live_retries_are_bounded():
    k = Kernel()
    r = Revalidator([changed] * 100)
    _, report = read(k.reader(revalidate=r), VA, 0x3000)
    assert r.calls == MAX_ATTEMPTS
    assert report.retries == MAX_ATTEMPTS
    assert runs(report) == [(0x0, 0x3000, "raced")]


def test_live_remap_under_the_reader_is_caught():
    """The page tables change between the optimistic read and the check."""
    k = Kernel()
    k.mem.write(0x20000000, tag(9, 9))

    done = []

    def remap_once(area):
        if not done:
            done.append(1)
            k.map4k(VA + PS, 0x20000000)  # page 1 now maps elsewhere
        return area

    data, report = read(k.reader(revalidate=Revalidator([remap_once])), VA, 0x3000)
    assert report.retries == 1
    assert data[PS:2 * PS] == tag(9, 9)  # the second attempt sees the new mapping


# -- vmalloc check: kcore vs page tables --------------------------------------

from kcoretool.reader.check import KcoreChecker  # noqa: E402


class FakeKcore:
    """/proc/kcore's vread with one kernel's defects, on one descriptor."""

    def __init__(self, kernel, flavour):
        self.k = kernel
        self.flavour = flavour
        self.bounce = bytes(PS)  # 6.1's per-file bounce buffer
        self.truth = kernel.reader()

    def __call__(self, va, size):
        sink = io.BytesIO()
        report = self.truth.read(va, size, sink)
        state = report.state_at(va)
        data = sink.getvalue()
        area = self.truth._area_at(va)
        if self.flavour == "6.1":
            if area is not None and area.vm is None and not area.lazy:
                data = bytes(PS)  # vread() skips !va->vm
            if state in ("hole", "lazy"):
                return self.bounce  # vread() found nothing: stale buffer
            self.bounce = data
        elif self.flavour == "6.12" and area is not None and area.kind == "vmap_block":
            if state in ("data", "block-dirty") and va < area.start + 4 * PS:
                first = io.BytesIO()
                self.truth.read(area.start, PS, first)
                data = first.getvalue()
        return data


def test_check_explains_6_1_defects():
    k = Kernel()
    checker = KcoreChecker(k.reader(), FakeKcore(k, "6.1"))
    b = checker.check(k.B)
    assert [(m.page, m.defect) for m in b.mismatches] == [(0, "vm_map_ram-zeros")]
    c = checker.check(k.C)
    assert [(m.page, m.defect) for m in c.mismatches] == [
        (0, "vm_map_ram-zeros"), (2, "vm_map_ram-zeros"), (3, "vm_map_ram-zeros")]
    checker.kcore(k.A.start, PS)  # the descriptor last read a tagged vmalloc page
    e = checker.check(k.E)
    assert [(m.page, m.pagetable_state, m.defect) for m in e.mismatches] == [
        (0, "lazy", "stale-bounce-buffer"), (1, "lazy", "stale-bounce-buffer")]
    assert checker.check(k.A).mismatches == []


def test_check_explains_6_12_first_page_defect():
    k = Kernel()
    checker = KcoreChecker(k.reader(), FakeKcore(k, "6.12"))
    c = checker.check(k.C)
    assert [(m.page, m.pagetable_state, m.defect) for m in c.mismatches] == [
        (1, "block-dirty", "block-run-start"), (2, "data", "block-run-start"), (3, "data", "block-run-start")]
    assert checker.check(k.B).mismatches == []


def test_live_zero_only_spans_are_not_raced():
    """A lazy area that is purged mid-read was never read from memory: its
    zeros are reported as lazy, not raced."""
    k = Kernel()
    r = Revalidator([lambda a: None] * 10)
    data, report = read(k.reader(revalidate=r), k.E.start, 0x2000)
    assert runs(report) == [(0x12000, 0x2000, "lazy")]
    assert r.calls == 0 and data == bytes(0x2000)
