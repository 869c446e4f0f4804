# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vmalloc over time on the lab's real 6.1 and 6.12 kernels (marker ``lab``).

Once per kernel (sharing the boot and its first snapshot, taken when the
test module loaded): in ONE guest process (tests/lab/in_guest/vmalloc_time.py),
``vmalloc top -n 2`` watches while the module's ``grow N`` makes N areas
from ``kct_grow`` between its refreshes, then ``vmalloc snapshot`` saves the
live state; the host dumps the guest right away (one extra lab snapshot,
``grown``) and frees the grown areas again.  Then:

* ``vmalloc diff`` of the two dumps (QEMU ELF with DWARF, makedumpfile's
  compressed kdump with BTF) names exactly the grown areas as new, with
  kct_grow's delta exact;
* the live snapshot and the dump taken just after it diff as equal, but for
  the areas the racing processes and kernel threads named in RACING change;
* snapshots round-trip byte for byte.
"""

from __future__ import annotations

import json
import sys

import pytest

from kcoretool.api import load_snapshot, open_kernel
from kcoretool.model.diff import diff

pytestmark = pytest.mark.lab

GROW = 24
PAGES_EACH = 2
CONTROL = "/sys/kernel/debug/kcoretool_test/control"
LIVE_SNAPSHOT = "/tmp/kct-live-snapshot.json"

#: Callers whose areas may differ between the live snapshot and the dump
#: taken a moment later: the guest's processes come and go between them (the
#: helper's own exit, the agent's next fork) -- their kernel stacks are
#: vmalloc'd -- and so do kernel threads'.
RACING = {
    "alloc_thread_stack_node",   # fork()ed and exiting tasks' stacks, kthreads too
    "dup_task_struct",           # the same, where the stack allocator is inlined
    "copy_process",
    "kernel_clone",              # 6.12: inlined all the way up (seen in the lab)
    "-",                         # vm_map_ram (no vm_struct): 9p and friends map pages briefly
}

_runs: dict = {}


def _grown(lab):
    """Do the guest work once per kernel; return what the tests judge."""
    key = (lab.kernel, str(lab.workdir))
    if key in _runs:
        return _runs[key]
    rc, out, err = lab.run([sys.executable, "-m", "tests.lab.in_guest.vmalloc_time", str(lab.vmlinux), str(GROW),
                            LIVE_SNAPSHOT], timeout=900)
    assert rc == 0, err[-2000:]
    res = json.loads(out)
    # Dump right after the live snapshot, then give the areas back so later
    # live tests see the module as it was.
    snap = lab.take_snapshot("grown")
    try:
        live_text = lab.read(LIVE_SNAPSHOT)
    finally:
        lab.guest.write(CONTROL, "grow_free")
    live_path = snap.dir / "live-snapshot.json"
    live_path.write_text(live_text)
    (snap.dir / "top.txt").write_text(res["top_out"])  # kept for the README
    res["snap"] = snap
    res["live_path"] = live_path
    _runs[key] = res
    return res


def test_top_shows_growth(lab) -> None:
    r = _grown(lab)
    assert r["grew"] and r["top_rc"] == 0, r["top_err"]
    blocks = list(r["top_out"].split("kcoretool vmalloc top - ")[1:])
    assert len(blocks) == 2, r["top_out"][:2000]
    assert " refresh 1/2 every 3s - " in blocks[0] and " refresh 2/2 every 3s - " in blocks[1]

    def row(block):
        for line in block.splitlines():
            if line.startswith("kct_grow [kcoretool_test] "):
                return line.split()
        return None

    assert row(blocks[0]) is None
    # CALLER(2 words) KIND AREAS PAGES SIZE +AREAS +PAGES +SIZE +LAST
    assert row(blocks[1]) == ["kct_grow", "[kcoretool_test]", "vmalloc", str(GROW), str(GROW * PAGES_EACH),
                              f"{GROW * 3 * 4}K", f"+{GROW}", f"+{GROW * PAGES_EACH}", f"+{GROW * 3 * 4}K",
                              f"+{GROW * PAGES_EACH}"]
    # the default sort (+PAGES, high to low) puts the growth first
    table = blocks[1].splitlines()
    first_row = table[table.index(next(x for x in table if x.startswith("-----"))) + 1]
    assert first_row.startswith("kct_grow [kcoretool_test] "), blocks[1]


@pytest.mark.parametrize("which", ["elf", "kdump"])
def test_diff_of_dumps_names_the_grown_areas(lab, which) -> None:
    r = _grown(lab)
    grown = r["module"]["grown"]
    assert grown["caller"] == "kct_grow" and grown["count"] == GROW and grown["pages_each"] == PAGES_EACH
    before, after = lab.snapshot.paths[which], r["snap"].paths[which]
    # ELF with the vmlinux's DWARF, the compressed kdump with the kernel's own BTF
    dbg = ["--vmlinux", str(lab.vmlinux)] if which == "elf" else ["--debuginfo", "btf"]
    rc, out, err = lab.kcoretool_host(*dbg, "--json", "vmalloc", "diff", str(before), str(after))
    assert rc == 0, err
    d = json.loads(out)
    assert d["same_boot"] is True and d["compared_by"] == "address"
    assert d["a"]["kaslr_offset"] == d["b"]["kaslr_offset"] == lab.snapshot.kaslr_offset
    new = [x for x in d["new"] if (x["caller_symbol"] or "").startswith("kct_grow+")]
    assert sorted(x["start"] for x in new) == sorted(grown["addrs"])
    for x in new:
        assert (x["kind"], x["pages"], x["size"]) == ("vmalloc", PAGES_EACH, (PAGES_EACH + 1) * 4096)
        assert x["caller_symbol"].endswith(" [kcoretool_test]")
    # nothing else of the module's came or went
    assert not [x for x in d["new"] + d["freed"] if "[kcoretool_test]" in (x["caller_symbol"] or "")
                and not x["caller_symbol"].startswith("kct_grow+")]
    row = next(c for c in d["callers"] if c["caller"] == "kct_grow [kcoretool_test]")
    assert row == {"caller": "kct_grow [kcoretool_test]", "kind": "vmalloc",
                   "areas": {"before": 0, "after": GROW, "delta": GROW},
                   "pages": {"before": 0, "after": GROW * PAGES_EACH, "delta": GROW * PAGES_EACH},
                   "bytes": {"before": 0, "after": GROW * 3 * 4096, "delta": GROW * 3 * 4096}}
    if which == "elf":
        return  # the text view once, with BTF (a second DWARF load costs a minute under load)
    # the filters, in text: only that caller, its areas and its delta
    rc, out, err = lab.kcoretool_host(*dbg, "vmalloc", "diff", str(before), str(after), "--caller", "kct_*")
    assert rc == 0, err
    (r["snap"].dir / f"diff-{which}.txt").write_text(out)
    assert f"new (in B only): {GROW} area(s)" in out and "freed (in A only): 0 area(s)" in out
    assert f"(+{GROW}), pages " in out and f"(+{GROW * PAGES_EACH}), size " in out, out


def test_live_snapshot_equals_the_dump_taken_after_it(lab) -> None:
    r = _grown(lab)
    assert r["snapshot_rc"] == 0, r["snapshot_err"]
    live = load_snapshot(str(r["live_path"]))
    assert live.live and live.source_kind == "kcore" and live.release == lab.release
    assert live.kaslr_offset == lab.snapshot.kaslr_offset
    k = open_kernel(str(r["snap"].paths["elf"]), str(lab.vmlinux))
    dump = k.snapshot()
    # The live snapshot read /proc/sys/kernel/random/boot_id (which makes the
    # kernel generate it); the dump holds the same bytes in sysctl_bootid.
    assert live.boot_id and dump.boot_id == live.boot_id, (live.boot_id, dump.boot_id_source)
    # the dump's time is the guest kernel's own clock, a moment after the live one
    assert dump.time_source == "the kernel's clock in the dump (timekeeper xtime_sec)"
    assert live.time is not None and dump.time is not None and 0 <= dump.time - live.time < 600
    d = diff(live, dump)
    assert d.same_boot and d.boot_note == f"same boot (boot id {live.boot_id})"
    odd = [(x.kind, x.caller_symbol) for x in d.freed + d.new + [c.after for c in d.changed]
           if (x.vm.caller_symbol.split("+")[0] if x.vm is not None and x.vm.caller_symbol else "-")
           not in RACING]
    assert odd == [], d.to_dict()["callers"]
    grow = [x for x in dump.model.areas if x.vm is not None and (x.vm.caller_symbol or "").startswith("kct_grow+")]
    assert len(grow) == GROW


def test_snapshots_round_trip(lab, tmp_path) -> None:
    r = _grown(lab)
    live = load_snapshot(str(r["live_path"]))
    again = tmp_path / "again.json"
    live.save(str(again))
    assert again.read_bytes() == r["live_path"].read_bytes()
    k = open_kernel(str(r["snap"].paths["kdump"]), debuginfo="btf")
    s = k.snapshot()
    s.save(str(tmp_path / "kdump.json"))
    back = load_snapshot(str(tmp_path / "kdump.json"))
    assert back == s and back.model.areas == s.model.areas and back.model.blocks == s.model.blocks
    assert [a.start for a in back.model.walk_order] == [a.start for a in s.model.walk_order]
