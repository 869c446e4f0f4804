"""The reader on real kernels (marker ``lab``): every page of every test
module area reads back with its own tag -- live through the page tables and
offline from every dump format -- and ``vmalloc check`` names the kernel's
own /proc/kcore defects on exactly the pages they hit."""

from __future__ import annotations

import json
import sys
from typing import Any, Dict

import pytest

from kcoretool.api import open_kernel
from tests.lab.config import SERIES_BY_NAME
from tests.module_areas import PAGE, check_area_pages, judge_live_pages

pytestmark = pytest.mark.lab

DUMPS = ("elf", "kdump", "elf_filtered")
_kernels: Dict[tuple, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_kernels():
    yield
    for k in _kernels.values():
        k.core.close()
    _kernels.clear()


def kernel_for(lab, dump: str):
    key = (lab.kernel, dump)
    if key not in _kernels:
        _kernels[key] = open_kernel(str(getattr(lab.snapshot, dump)), str(lab.vmlinux))
    return _kernels[key]


@pytest.mark.parametrize("dump", DUMPS)
def test_every_module_page_reads_its_own_tag_offline(lab, dump):
    k = kernel_for(lab, dump)
    problems = []
    for area in lab.snapshot.module["areas"]:
        data, report = k.read(area["addr"], area["size"])
        problems += check_area_pages(area, data, report)
    assert problems == []


@pytest.mark.parametrize("dump", DUMPS)
def test_guard_pages_and_holes_are_reported(lab, dump):
    k = kernel_for(lab, dump)
    model = k.vmalloc()
    for area in lab.snapshot.module["areas"]:
        if area["kind"] not in ("vmalloc", "vmap"):
            continue
        a = model.find(area["addr"])
        guard = a.vm.addr + a.vm.size - PAGE
        data, report = k.read(guard, PAGE)
        assert report.state_at(guard) == "guard" and data == bytes(PAGE), area["name"]


def test_block_pieces_against_the_block(lab):
    """The pieces sit in one vmap block; the reader's used/dirty/unused
    pages match what the module knows it allocated and freed."""
    k = kernel_for(lab, "elf")
    pieces = [a for a in lab.snapshot.module["areas"] if a["kind"] == "vm_map_ram_piece"]
    block_start = pieces[0]["block_start"]
    _, report = k.read(block_start, 0x10000)
    states = [report.state_at(block_start + i * PAGE) for i in range(16)]
    for a in pieces:
        first = (a["addr"] - block_start) // PAGE
        want = "block-dirty" if a["state"] == "freed" else "data"
        assert states[first:first + a["nr_pages"]] == [want] * a["nr_pages"], a["name"]


def test_live_pages_read_their_own_tags(lab):
    rc, out, err = lab.run([sys.executable, "-m", "tests.lab.in_guest.read", str(lab.vmlinux)], timeout=600)
    assert rc == 0, err[-2000:]
    assert judge_live_pages(json.loads(out)) == []


def test_vmalloc_check_names_the_kernels_defects(lab, lab_live_debuginfo):
    # `kcoretool --debuginfo dwarf --vmlinux V --json vmalloc check` in the
    # guest, run by the live DWARF/BTF parity fixture (which diffs it with BTF's)
    run = next(r["dwarf"] for r in lab_live_debuginfo["results"] if r["argv"] == ["--json", "vmalloc", "check"])
    assert run["rc"] == 3, f"exit {run['rc']}: {run['err'][-1000:]}"
    result = json.loads(run["out"])
    module = {a["id"]: a for a in lab.snapshot.module["areas"]}
    flagged = {}
    for r in result["results"]:
        assert not set(r["changing"]) & {a["addr"] + i * PAGE for a in lab.snapshot.module["areas"]
                                         for i in range(a["nr_pages"])}, "test pages never change"
        for m in r["mismatches"]:
            flagged[m["vaddr"]] = (r["kind"], m["defect"], m["pagetable_state"])
    assert "unexplained" not in result["by_defect"], [
        (hex(va), v) for va, v in flagged.items() if v[1] == "unexplained"]
    pieces = [a for a in module.values() if a["kind"] == "vm_map_ram_piece"]
    block = pieces[0]["block_start"]
    live_piece_pages = {a["addr"] + i * PAGE for a in pieces if a["state"] == "live" for i in range(a["nr_pages"])}
    large = next(a for a in module.values() if a["kind"] == "vm_map_ram_large")
    large_pages = {large["addr"] + i * PAGE for i in range(large["nr_pages"])}
    vmalloc_pages = {a["addr"] + i * PAGE for a in module.values() if a["kind"] in ("vmalloc", "vmalloc_huge", "vmap")
                     for i in range(a["nr_pages"])}
    assert not vmalloc_pages & set(flagged), "vmalloc and vmap pages read right through kcore"
    if SERIES_BY_NAME[lab.kernel].expect.kcore_ram == "zeros":
        # vread() skips every area without a vm_struct: all vm_map_ram pages.
        assert {va for va in live_piece_pages | large_pages if flagged.get(va, (0, 0))[1] == "vm_map_ram-zeros"} \
            == live_piece_pages | large_pages
        assert {d for _, d, _ in flagged.values()} <= {"vm_map_ram-zeros", "stale-bounce-buffer"}
        assert all(st in ("hole", "lazy", "guard", "block-dirty", "block-unused", "unmapped")
                   for _, d, st in flagged.values() if d == "stale-bounce-buffer")
    else:
        # vmap_ram_vread_iter(): only the piece at the block's start is right.
        first = min(live_piece_pages)
        assert first == block
        assert first not in flagged
        assert {va for va in live_piece_pages if va != first} <= set(flagged)
        assert all(d == "block-run-start" for va, (_, d, _) in flagged.items() if block <= va < block + 0x10000)
        assert not large_pages & set(flagged), "6.3+ reads large vm_map_ram areas right"
        assert "stale-bounce-buffer" not in result["by_defect"]


def _excluded_page(core, system_ram) -> int:
    """A System RAM page the dump does not hold: past a PT_LOAD's p_filesz
    (makedumpfile -E), or in no dumped run (kdump's bitmap)."""
    for seg in core.segments:
        if seg.filesz + PAGE <= seg.memsz:
            return seg.paddr + seg.filesz
    runs = sorted((s.paddr, s.paddr + s.memsz) for s in core.segments)
    for (_, end), (nxt, _) in zip(runs, runs[1:]):
        if nxt > end and any(lo <= end <= hi for lo, hi in system_ram):
            return end
    raise AssertionError(f"{core.path}: no excluded page")


@pytest.mark.parametrize("dump", ("elf_filtered", "kdump"))
def test_excluded_pages_are_reported_as_excluded(lab, dump):
    """A RAM page makedumpfile left out reads as 'excluded' through the page
    tables (its direct-map address), and as data from the full QEMU dump."""
    from kcoretool.source import open_core

    pob = lab.ground_truth["page_offset_base"]
    with open_core(str(getattr(lab.snapshot, dump))) as core:
        phys = _excluded_page(core, lab.ground_truth["system_ram"])
    va = pob + phys
    _, report = kernel_for(lab, "elf").read(va, PAGE)
    assert report.state_at(va) == "data"
    data, report = kernel_for(lab, dump).read(va, PAGE)
    assert (report.state_at(va), data) == ("excluded", bytes(PAGE))


CHURN_SECONDS = 60


def test_churn_never_mixes_areas(lab):
    """With the churn thread making >= 1000 tagged areas a second, a minute
    of repeated extraction never returns a page carrying another area's tag;
    areas that vanish mid-read are reported as raced."""
    ctl = "/sys/kernel/debug/kcoretool_test/control"
    lab.guest.write(ctl, "churn_start")
    try:
        import time

        time.sleep(3)
        rate = int(lab.read("/sys/kernel/debug/kcoretool_test/churn_rate").strip())
        rc, out, err = lab.run([sys.executable, "-m", "tests.lab.in_guest.churn", str(lab.vmlinux), str(CHURN_SECONDS)],
                               timeout=CHURN_SECONDS + 600)
        rate_after = int(lab.read("/sys/kernel/debug/kcoretool_test/churn_rate").strip())
    finally:
        lab.guest.write(ctl, "churn_stop")
    if rc != 0:
        # SIGKILL is the guest's OOM killer: say so instead of leaving a bare -9.
        oom = [ln for ln in lab.guest._console_text().splitlines() if "Out of memory" in ln or "oom-kill" in ln]
        pytest.fail(f"guest_churn exited {rc}; guest OOM lines: {oom[-3:]}\n{err[-2000:]}")
    result = json.loads(out)
    assert min(rate, rate_after) >= 1000, f"churn only {rate}/{rate_after} areas/s"
    assert result["rounds"] >= 2
    assert result["foreign_count"] == 0, result["foreign"]
    assert result["states"].get("raced", 0) + result["retries"] > 0, result


def test_huge_area_flag_names(lab):
    """Bit 0x400 is VM_ALLOW_HUGE_VMAP on both kernels (6.10+ renamed
    vmalloc_huge() to vmalloc_huge_noprof(), which detection must follow)."""
    if not SERIES_BY_NAME[lab.kernel].expect.huge:
        pytest.skip("no vmalloc_huge() before 5.18")
    huge = next(a for a in lab.snapshot.module["areas"] if a["kind"] == "vmalloc_huge")
    area = kernel_for(lab, "elf").vmalloc().find(huge["addr"])
    assert "VM_ALLOW_HUGE_VMAP" in area.vm.flag_names and area.vm.page_order == 9
