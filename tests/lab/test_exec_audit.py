"""``exec audit`` on the real kernels (issue 24).

Clean: the lab's guest -- BPF programs, a BPF trampoline, kprobes and an
ftrace trampoline in use (tests/lab/in_guest/bpf.py) -- flags nothing, live
and on every dump format of the lab's snapshot, with DWARF and with BTF.

Planted: then, and only in this test, tests/kmod/kcoretool_hide.ko is
loaded: an executable vmap page no one owns, a W+X page, and the module
taking itself off the module list.  The audit finds each with its reason,
live (then the module puts itself back on the list and is unloaded, so
later tests see the guest as before) and on the dumps of a second, small
guest that held the module when it crashed (the ``lab_panicked`` fixture,
shared with the fleet's panic test; each format in one debug-info mode:
PLANTED_MODES).

Each source runs its commands in one process per debug-info mode
(tests/lab/in_guest/cli.py), the dumps' on the host."""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Tuple

from tests.lab.kmod import hide_module
from tests.lab.test_exec import DUMPS, MODES, _run_guest, _run_host

CMDS = [["--json", "exec", "audit"], ["exec", "audit"]]
PARAMS = "/sys/module/kcoretool_hide/parameters"


#: The planted checks: every source once, DWARF on the QEMU ELF, BTF on the
#: rest (the clean checks take every source in both modes; a DWARF load per
#: dump costs 10-60 s, the suite has 40 minutes for four kernels).
PLANTED_MODES = {"live": "btf", "elf": "dwarf", "kdump": "btf", "elf_filtered": "btf"}


def _sources(lab: Any, live: bool, paths: Any, planted: bool) -> List[Tuple[str, List[str]]]:
    out = []
    for mode in MODES:
        dbg = ["--debuginfo", mode] + (["--vmlinux", str(lab.vmlinux)] if mode == "dwarf" else [])
        if live:
            if not planted or PLANTED_MODES["live"] == mode:
                out.append((f"live-{mode}", dbg))
        else:
            out += [(f"{d}-{mode}", ["-c", str(paths[d])] + dbg) for d in DUMPS
                    if not planted or PLANTED_MODES[d] == mode]
    return out


def _audit(lab: Any, live: bool, paths: Any = None,
           planted: bool = False) -> Dict[str, Tuple[Dict[str, Any], Dict[str, Any]]]:
    """label -> (the --json result, the table command's result)."""
    srcs = _sources(lab, live, paths, planted)
    argvs = [opts + c for _l, opts in srcs for c in CMDS]
    res = _run_guest(lab, argvs) if live else _run_host(argvs)
    out = {}
    for i, (label, _o) in enumerate(srcs):
        j, t = res[2 * i], res[2 * i + 1]
        assert j["rc"] in (0, 3) and t["rc"] == j["rc"], f"{label}: rc {j['rc']}/{t['rc']}: {j['err'][-800:]}"
        out[label] = (json.loads(j["out"]), t)
    return out


def _clean(lab: Any, label: str, a: Dict[str, Any], table: Dict[str, Any]) -> None:
    assert a["flags"] == [], (label, a["flags"])
    assert table["rc"] == 0 and "0 flag(s)" in table["out"], (label, table["out"][-600:])
    t = a["totals"]
    assert a["unowned_bytes"] == 0 and "unowned" not in t, label
    # What every lab kernel maps executable, each with its owner.
    assert t["kernel-text"] > 8 << 20 and t["module-text"] > 0 and t["bpf-prog"] > 0, (label, t)
    assert t["realmode-trampoline"] in (4096, 8192), (label, t)
    assert t["kprobe-insn"] == 4096 and t["ftrace-trampoline"] > 0 and t["bpf-trampoline"] > 0, (label, t)
    # The first pack's 25 chunks (1600 bytes) that `exec packs` used to call
    # unattributed: the PTP classifier's classic BPF, JIT'd at boot.
    assert t["bpf-classic"] in (1600, 4096), (label, t)
    assert sum(t.values()) == a["executable_bytes"], label


def _planted(label: str, a: Dict[str, Any], table: Dict[str, Any], rox: int, wx: int) -> None:
    flags = a["flags"]
    assert table["rc"] == 3, (label, table["out"][-600:])

    def at(reason: str, addr: int) -> List[Dict[str, Any]]:
        return [f for f in flags if f["reason"] == reason and f["start"] <= addr < f["end"]]

    un = at("unowned-exec", rox)
    assert len(un) == 1 and un[0]["area"] == rox and un[0]["end"] - un[0]["start"] == 4096, (label, un)
    assert len(at("wx", wx)) == 1 and at("wx", wx)[0]["area"] == wx, (label, flags)
    assert len(at("unowned-exec", wx)) == 1, (label, flags)
    assert not at("wx", rox), (label, flags)
    hid = [f for f in flags if f["reason"] == "hidden-module"]
    assert len(hid) == 1 and "module kcoretool_hide " in hid[0]["detail"] and "mod_tree" in hid[0]["detail"] \
        and "/sys/module kobject" in hid[0]["detail"], (label, hid)
    # Nothing else: the clean kernel's owners stay owned.
    assert len(flags) == 4, (label, flags)
    assert a["unowned_bytes"] == 8192, (label, a["totals"])
    for word in ("unowned-exec", "wx", "hidden-module", "4 flag(s)"):
        assert word in table["out"], (label, table["out"][-800:])


def test_classic_socket_filters_are_owned(lab: Any) -> None:
    """A classic BPF socket filter (SO_ATTACH_FILTER: libpcap, DHCP
    clients) has no ID and no symbol: found through its process's socket,
    it is owned (bpf-classic), not flagged."""
    rc, out, err = lab.run([sys.executable, "-m", "tests.lab.in_guest.classic_filter"], timeout=600)
    assert rc == 0, err[-2000:]
    res = json.loads(out)
    audit, classic = res["audit"], res["classic"]
    assert audit["rc"] == 0, audit["out"][-1500:] + audit["err"]
    assert json.loads(audit["out"])["flags"] == []
    assert classic["rc"] == 0, classic["err"]
    owners = [r["owner"] for r in json.loads(classic["out"])]
    mine = [o for o in owners if o.startswith("socket filter of ") and f"[{res['pid']}]" in o]
    assert len(mine) == 1 and mine[0].endswith(" (classic BPF)"), owners


def test_exec_audit(lab: Any) -> None:
    # Clean first: the lab's own snapshot and the live guest as it is.
    for label, (a, t) in _audit(lab, False, lab.snapshot.paths).items():
        _clean(lab, label, a, t)
    for label, (a, t) in _audit(lab, True).items():
        _clean(lab, label, a, t)

    rc, _o, err = lab.run(["/sbin/insmod", str(hide_module(lab.module_path))], timeout=120)
    assert rc == 0, err
    try:
        rox = int(lab.read(f"{PARAMS}/rox_addr"))
        wx = int(lab.read(f"{PARAMS}/wx_addr"))
        mods = lab.read("/proc/modules")
        assert "kcoretool_hide" not in mods and "kcoretool_test" in mods
        for label, (a, t) in _audit(lab, True, planted=True).items():
            _planted(label, a, t, rox, wx)
    finally:
        lab.guest.write(f"{PARAMS}/unhide", "1")
        rc, _o, err = lab.run(["/sbin/rmmod", "kcoretool_hide"], timeout=120)
        assert rc == 0, err


def test_exec_audit_planted_dumps(lab: Any, lab_panicked: Any) -> None:
    """The planted pages on every dump format, each in one debug-info mode
    (PLANTED_MODES): the dumps of the small guest that held kcoretool_hide.ko
    when it crashed (tests.lab.lab.panicked)."""
    assert "kcoretool_hide" not in lab_panicked.modules
    t: Dict[str, Any] = {}
    for label, (a, t) in _audit(lab, False, lab_panicked.paths, planted=True).items():
        _planted(label, a, t, lab_panicked.rox, lab_panicked.wx)
    (lab.workdir / "exec-audit-planted.txt").write_text(t["out"])
