"""Foundation checks of the real-kernel lab (marker ``lab``).

1. The test module's JSON agrees with the guest's /proc/vmallocinfo captured at
   the same moment (so the lab's ground truth is itself trustworthy).
2. kcoretool's ELF-level commands (info, segments, vmcoreinfo) agree with the
   kernel on the live /proc/kcore and on the three saved dumps.

Each kernel boots once per session (the ``lab`` fixture); see tests/lab/README.md.
"""

from __future__ import annotations

import json
import struct
import time
from typing import Any

import pytest

from tests.lab.config import SERIES_BY_NAME
from tests.lab.pytest_plugin import kcoretool_json
from tests.lab.vmallocinfo import VmallocInfoLine, parse

pytestmark = pytest.mark.lab

PAGE = 4096
TAG_MAGIC = 0x4B43
MODULE = "kcoretool_test"
CORES = ("live", "elf", "kdump", "elf_filtered")
EXPECTED_KIND = {"live": "kcore", "elf": "elf-vmcore", "elf_filtered": "elf-vmcore", "kdump": "kdump"}


def tag(area_id: int, page: int, offset: int = 0) -> int:
    return TAG_MAGIC << 48 | (area_id & 0xFFFF) << 32 | (page & 0xFFFFF) << 12 | offset


def areas(lab: Any, kind: str) -> list[dict]:
    return [a for a in lab.snapshot.module["areas"] if a["kind"] == kind]


def one(lab: Any, kind: str) -> dict:
    found = areas(lab, kind)
    assert len(found) == 1, f"expected one {kind} area, got {[a['name'] for a in found]}"
    return found[0]


def vmi_at(lab: Any, start: int) -> list[VmallocInfoLine]:
    return [l for l in parse(lab.snapshot.vmallocinfo) if l.start == start]


# Results of kcoretool runs, shared by the tests of one session (each run in
# the TCG guest costs seconds).
_memo: dict[tuple, Any] = {}


def kct(lab: Any, core: str, *args: str) -> Any:
    key = (lab.kernel, core, args)
    if key not in _memo:
        if core == "live":
            _memo[key] = kcoretool_json(lab.kcoretool, *args)
        else:
            path = getattr(lab.snapshot, core)
            _memo[key] = kcoretool_json(lab.kcoretool_host, "-c", str(path), *args)
    return _memo[key]


# ---------------------------------------------------------------- module JSON


def test_module_json_shape(lab: Any) -> None:
    m = lab.snapshot.module
    assert m["release"] == lab.release
    assert m["page_size"] == PAGE
    assert "0x4B43<<48" in m["tag_format"] and m["tag_magic"] == TAG_MAGIC
    kinds = {a["kind"] for a in m["areas"]}
    want = {"vmalloc", "vmap", "vm_map_ram_piece", "vm_map_ram_large", "lazy_freed"}
    huge = SERIES_BY_NAME[lab.kernel].expect.huge
    assert want | ({"vmalloc_huge"} if huge else set()) <= kinds
    assert ("vmalloc_huge" in kinds) == huge
    for a in m["areas"]:
        assert a["size"] == a["nr_pages"] * PAGE == len(a["pages"]) * PAGE, a["name"]
        assert a["addr"] % PAGE == 0, a["name"]
        for p in a["pages"]:
            assert p["phys"] % PAGE == 0 and p["phys"] > 0, (a["name"], p)
            if a["tagged"]:
                assert p["tag"] == tag(a["id"], p["index"]), (a["name"], p)


def test_module_sizes_and_huge(lab: Any) -> None:
    sizes = sorted(a["nr_pages"] for a in areas(lab, "vmalloc"))
    assert len(set(sizes)) >= 3, sizes
    large = one(lab, "vm_map_ram_large")
    assert large["nr_pages"] > lab.snapshot.module["vmap_max_alloc"] == 64
    if not SERIES_BY_NAME[lab.kernel].expect.huge:
        return  # no vmalloc_huge() before 5.18
    huge = one(lab, "vmalloc_huge")
    assert huge["size"] == 4 << 20
    assert huge["addr"] % (2 << 20) == 0, "vmalloc_huge area not 2 MiB aligned"
    assert huge.get("phys_contiguous_2m") is True, "4 MiB vmalloc_huge did not get 2 MiB pages"


def test_module_pieces_share_a_block_with_a_dirty_hole(lab: Any) -> None:
    m = lab.snapshot.module
    bsize = m["vmap_block_size"]
    pieces = areas(lab, "vm_map_ram_piece")
    assert sorted(p["nr_pages"] for p in pieces if p["live"]) == [1, 2, 3]
    blocks = {p["block_start"] for p in pieces}
    assert len(blocks) == 1, f"pieces span blocks {sorted(map(hex, blocks))}"
    block = blocks.pop()
    assert block % bsize == 0
    for p in pieces:
        assert block <= p["addr"] and p["addr"] + p["size"] <= block + bsize
    freed = [p for p in pieces if p["state"] == "freed"]
    assert len(freed) == 1
    hole = freed[0]
    live_starts = [p["addr"] for p in pieces if p["live"]]
    assert min(live_starts) < hole["addr"] < max(live_starts), "freed piece not between live ones"


def test_module_lazy_area_recorded(lab: Any) -> None:
    lazy = one(lab, "lazy_freed")
    assert lazy["state"] == "lazy_freed" and not lazy["live"]


def _elf_loads(path: Any) -> list[tuple[int, int, int]]:
    """(paddr, filesz, offset) of the PT_LOADs of an ELF64 core."""
    with open(path, "rb") as f:
        eh = f.read(64)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    out = []
    for i in range(phnum):
        p_type, _, off, _, paddr, filesz = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
        if p_type == 1:
            out.append((paddr, filesz, off))
    return out


def test_module_tags_in_physical_memory(lab: Any) -> None:
    """The JSON's phys + tag per page are what physical memory holds at the
    dump moment (checked in the raw QEMU dump, independent of kcoretool)."""
    loads = _elf_loads(lab.snapshot.elf)
    checked = 0
    with open(lab.snapshot.elf, "rb") as f:
        for a in lab.snapshot.module["areas"]:
            # Lazily freed pages went back to the page allocator: no promise.
            if not a["tagged"] or a["kind"] == "lazy_freed":
                continue
            for p in a["pages"]:
                seg = next(((pa, off) for pa, sz, off in loads if pa <= p["phys"] < pa + sz), None)
                assert seg, f"{a['name']} page {p['index']}: phys {p['phys']:#x} not in the dump"
                f.seek(seg[1] + p["phys"] - seg[0])
                words = struct.unpack("<512Q", f.read(PAGE))
                for w in (0, 1, 255, 511):
                    assert words[w] == tag(a["id"], p["index"], w * 8), (a["name"], p["index"], w)
                checked += 1
    # every tagged page: 1,200 with the 4 MiB huge area, 150 without (5.10)
    assert checked > (1000 if SERIES_BY_NAME[lab.kernel].expect.huge else 100)


# ------------------------------------------------ module JSON vs /proc/vmallocinfo


@pytest.mark.parametrize("kind", ["vmalloc", "vmalloc_huge", "vmap", "ioremap"])
def test_vmallocinfo_vm_struct_areas(lab: Any, kind: str) -> None:
    found = [a for a in areas(lab, kind) if a["live"]]
    if kind == "vmalloc_huge" and not SERIES_BY_NAME[lab.kernel].expect.huge:
        pytest.skip("no vmalloc_huge() before 5.18")
    if kind == "ioremap" and not found:
        pytest.skip("module made no ioremap on this machine")
    assert found
    for a in found:
        lines = [l for l in vmi_at(lab, a["addr"]) if l.kind == "vm_struct"]
        assert len(lines) == 1, f"{a['name']}: vmallocinfo lines {[l.raw for l in lines]}"
        l = lines[0]
        # vm->size and the printed end include the trailing guard page.
        assert l.size == a["size"] + PAGE, l.raw
        assert l.end == a["addr"] + a["size"] + PAGE, l.raw
        assert l.caller_function == a["caller"], l.raw
        assert l.caller_module == MODULE, l.raw
        if kind in ("vmalloc", "vmalloc_huge"):
            assert l.pages == a["nr_pages"] and "vmalloc" in l.words, l.raw
        elif kind == "vmap":
            assert "vmap" in l.words, l.raw
        else:
            assert "ioremap" in l.words and l.phys == a["pages"][0]["phys"], l.raw


def test_vmallocinfo_large_vm_map_ram(lab: Any) -> None:
    a = one(lab, "vm_map_ram_large")
    lines = vmi_at(lab, a["addr"])
    assert [(l.kind, l.end, l.size) for l in lines] == [("vm_map_ram", a["addr"] + a["size"], a["size"])]


def test_vmallocinfo_vmap_block(lab: Any) -> None:
    bsize = lab.snapshot.module["vmap_block_size"]
    block = areas(lab, "vm_map_ram_piece")[0]["block_start"]
    lines = vmi_at(lab, block)
    assert [(l.kind, l.end, l.size) for l in lines] == [("vm_map_ram", block + bsize, bsize)]
    # One line per block, none per piece.
    for p in areas(lab, "vm_map_ram_piece"):
        if p["addr"] != block:
            assert not vmi_at(lab, p["addr"]), p["name"]


def test_vmallocinfo_lazy_area_unpurged(lab: Any) -> None:
    a = one(lab, "lazy_freed")
    lines = vmi_at(lab, a["addr"])
    assert [(l.kind, l.end, l.size) for l in lines] == [
        ("unpurged", a["addr"] + a["size"] + PAGE, a["size"] + PAGE)]


def test_vmallocinfo_addresses_not_hashed(lab: Any) -> None:
    # kptr_restrict=1 and root: real addresses, all in vmalloc or module space.
    lines = parse(lab.snapshot.vmallocinfo)
    assert len(lines) > 20
    vstart = lab.ground_truth["vmalloc_start"]
    assert vstart, "vmalloc_base not read"
    for l in lines:
        assert l.start >= vstart or l.start >= lab.ground_truth["modules_vaddr"], l.raw


# ---------------------------------------------------------------- kcoretool


@pytest.mark.parametrize("core", CORES)
def test_kcoretool_info(lab: Any, core: str) -> None:
    info = kct(lab, core, "info")
    gt = lab.ground_truth
    assert info["kind"] == EXPECTED_KIND[core]
    assert info["release"] == gt["release"]
    assert info["arch"] == "x86_64"
    assert info["page_size"] == PAGE
    assert info["kaslr_offset"] == gt["kaslr_offset"] == lab.snapshot.kallsyms_text - 0xFFFFFFFF81000000
    assert isinstance(info["segments"], dict) and info["segments"]
    if core != "live":
        # QEMU writes one NT_PRSTATUS per vCPU; makedumpfile keeps them.
        assert info["cpus"] in (None, gt["cpus"]), info["cpus"]


@pytest.mark.parametrize("core", CORES)
def test_kcoretool_vmcoreinfo(lab: Any, core: str) -> None:
    vi = kct(lab, core, "vmcoreinfo", "OSRELEASE", "PAGESIZE", "KERNELOFFSET")
    assert vi["OSRELEASE"] == lab.release
    assert int(vi["PAGESIZE"]) == PAGE
    assert int(vi["KERNELOFFSET"], 16) == lab.ground_truth["kaslr_offset"]


def _ram_pages(gt: dict) -> list[tuple[int, int]]:
    """System RAM as page-granular [start, end) — what walk_system_ram_range yields."""
    return [((s + PAGE - 1) & ~(PAGE - 1), (e + 1) & ~(PAGE - 1)) for s, e in gt["system_ram"]]


def test_kcoretool_live_segments(lab: Any) -> None:
    segs = kct(lab, "live", "segments")
    gt = lab.ground_truth
    counts: dict[str, int] = {}
    for s in segs:
        counts[s["kind"]] = counts.get(s["kind"], 0) + 1
    assert set(counts) <= {"text", "vmalloc", "modules", "ram", "vmemmap", "user"}, counts
    assert counts.get("text") == 1 and counts.get("vmalloc") == 1 and counts.get("modules") == 1, counts
    assert counts.get("ram", 0) >= 1 and counts.get("vmemmap", 0) >= 1, counts
    assert counts.get("user", 0) <= 1, counts
    by_kind = {s["kind"]: s for s in segs}
    assert by_kind["text"]["vaddr"] == lab.snapshot.kallsyms_text
    assert by_kind["vmalloc"]["vaddr"] == gt["vmalloc_start"]
    assert by_kind["modules"]["vaddr"] == gt["modules_vaddr"]
    ram = sorted((s["paddr"], s["paddr"] + s["memsz"]) for s in segs if s["kind"] == "ram")
    assert ram == sorted(_ram_pages(gt)), f"kcore RAM {ram} vs iomem {_ram_pages(gt)}"
    for s in segs:
        if s["kind"] == "ram":
            assert s["vaddr"] == gt["page_offset_base"] + s["paddr"], s


def test_kcoretool_live_segments_cover_vmallocinfo(lab: Any) -> None:
    segs = [s for s in kct(lab, "live", "segments") if s["kind"] in ("vmalloc", "modules")]
    for l in parse(lab.snapshot.vmallocinfo):
        assert any(s["vaddr"] <= l.start and l.end <= s["vaddr"] + s["memsz"] + 1 for s in segs), l.raw


@pytest.mark.parametrize("core", CORES)
def test_kcoretool_info_counts_match_segments(lab: Any, core: str) -> None:
    info = kct(lab, core, "info")
    counts: dict[str, int] = {}
    for s in kct(lab, core, "segments"):
        counts[s["kind"]] = counts.get(s["kind"], 0) + 1
    assert info["segments"] == counts


def _guest_memory(iomem: str) -> list[tuple[int, int]]:
    """Physical ranges a vmcore of this guest may legitimately contain, [start, end).

    Not only "System RAM": QEMU dumps its whole RAM block, so page 0, the
    legacy hole below 1 MiB and firmware-"Reserved" RAM are in the raw dump, and
    makedumpfile keeps pages it cannot classify.  PCI/MMIO windows and
    unlisted space must never appear; a segment there means a wrong paddr.
    """
    out = [(0, 0x100000)]
    for line in iomem.splitlines():
        if line.startswith(" ") or " : " not in line:
            continue
        rng, name = line.strip().split(" : ", 1)
        a, b = (int(x, 16) for x in rng.split("-"))
        if name in ("System RAM", "Reserved"):
            out.append((a, b + 1))
    return out


def _inside(lo: int, hi: int, ranges: list[tuple[int, int]]) -> bool:
    """[lo, hi) covered by the union of ranges (which may touch)."""
    for a, b in sorted(ranges):
        if a <= lo < b:
            lo = b
            if lo >= hi:
                return True
    return lo >= hi


@pytest.mark.parametrize("core", ["elf", "kdump", "elf_filtered"])
def test_kcoretool_dump_ram_segments(lab: Any, core: str) -> None:
    segs = kct(lab, core, "segments")
    kinds = {s["kind"] for s in segs}
    assert kinds <= {"ram", "text"}, kinds
    ram = sorted((s["paddr"], s["paddr"] + s["memsz"]) for s in segs if s["kind"] == "ram")
    assert ram, "no ram segments"
    for (a, b), (c, _) in zip(ram, ram[1:]):
        assert b <= c, f"overlapping ram segments {hex(a)}-{hex(b)} and {hex(c)}"
    allowed = _guest_memory(lab.snapshot.iomem)
    outside = [(hex(a), hex(b)) for a, b in ram if not _inside(a, b, allowed)]
    assert not outside, f"{core}: ram segments outside the guest's RAM/firmware ranges: {outside}"
    # And the dump does hold the kernel's RAM, not only firmware ranges.
    sysram = _ram_pages(lab.ground_truth)
    assert any(a < e and s < b for a, b in ram for s, e in sysram)
    if core == "elf":
        # The raw QEMU dump holds all of guest RAM: it covers every System RAM range.
        missing = [(hex(s), hex(e)) for s, e in sysram if not _inside(s, e, ram)]
        assert not missing, f"System RAM not in the raw dump: {missing}"


# ---------------------------------------------------------------- churn (last: it
# changes the live guest; the snapshot above was taken before)


def test_module_churn_rate(lab: Any) -> None:
    import time

    ctl = "/sys/kernel/debug/kcoretool_test/control"
    lab.guest.write(ctl, "churn_start")
    try:
        time.sleep(2.5)
        rate = int(lab.read("/sys/kernel/debug/kcoretool_test/churn_rate").strip())
        total = int(lab.read("/sys/kernel/debug/kcoretool_test/churn_total").strip())
    finally:
        lab.guest.write(ctl, "churn_stop")
    # Tens of thousands a second on a quiet machine; a loaded 2-core host
    # running other guests gave 7.3 220 (the point is that it churns).
    assert rate >= 100, f"churn made {rate} areas/s ({total} in total)"


# ---------------------------------------------------------------- the harness

@pytest.mark.parametrize("code", ["0", "3", "a message"])
def test_preloaded_python_runs_like_a_fresh_one(lab: Any, code: str) -> None:
    """The agent forks ``python -m tests.lab.in_guest.*`` and ``python -m
    kcoretool`` from a preloaded interpreter (tests/lab/in_guest/zygote.py):
    argv, working directory, sys.path[0], environment, session, stdin, stdout,
    stderr and exit status are those of a fresh interpreter (KCT_NO_ZYGOTE)."""
    argv = [lab.guest.python, "-m", "tests.lab.in_guest.echo", code, "two words"]
    runs = [lab.guest.run(argv, env={"KCT_ECHO": "x", **fresh}, cwd="/tmp", timeout=300)
            for fresh in ({}, {"KCT_NO_ZYGOTE": "1"})]
    assert runs[0] == runs[1]
    rc, out, err = runs[0]
    assert rc == {"0": 0, "3": 3}.get(code, 1)
    assert err == "to stderr\n" + ("a message\n" if code == "a message" else "")
    assert json.loads(out) == {"argv": [code, "two words"], "argv0": "echo.py", "cwd": "/tmp", "path0": "/tmp",
                               "env": "x", "session_leader": True, "stdin": "", "main": "__main__"}


def test_preloaded_python_times_out(lab: Any) -> None:
    t0 = time.monotonic()
    rc, _out, err = lab.guest.run([lab.guest.python, "-m", "kcoretool", "--debuginfo", "btf", "vmalloc", "top",
                                   "-d", "1"], timeout=5)
    assert rc == -9 and "timed out after 5.0s" in err and time.monotonic() - t0 < 45
