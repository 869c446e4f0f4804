"""Executable memory on the real kernels (issue 12): every BPF program at its
kallsyms address with its name, tag and id, every module's sections inside
its regions, whatis into JIT images and module text, ``exec dump`` bytes
equal to the JIT'd bytes the kernel reports -- live and on every dump
format, with DWARF and with BTF.

The truth comes from tests/lab/in_guest/bpf.py, which loads the programs
before the snapshot and keeps them loaded (``lab.exec_truth``).  Each
source runs all its commands in one process (tests/lab/in_guest/cli.py: one
kernel open per debug-info mode)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any, Dict, List, Tuple

from tests.lab.config import REPO_ROOT, SERIES_BY_NAME

DUMPS = ("elf", "kdump", "elf_filtered")
MODES = ("dwarf", "btf")


def _truth(lab: Any) -> Dict[str, Any]:
    t = lab.exec_truth
    assert t and "progs" in t, "the lab loaded no BPF programs (tests/lab/exec_truth.py)"
    return t


def _kallsyms_bpf_images(truth: Dict[str, Any]) -> Dict[str, int]:
    """bpf_trampoline_* / bpf_dispatcher_* -> address, from /proc/kallsyms."""
    out = {}
    for line in truth["kallsyms_bpf"]:
        addr, _t, name = line.split()[:3]
        if name.startswith(("bpf_trampoline_", "bpf_dispatcher_")):
            out[name] = int(addr, 16)
    return out


def _kallsyms_progs(truth: Dict[str, Any]) -> Dict[str, int]:
    """bpf_prog_<tag>_<name> -> address, from /proc/kallsyms at the dump moment."""
    out = {}
    for line in truth["kallsyms_bpf"]:
        addr, _t, name = line.split()[:3]
        if name.startswith("bpf_prog_"):
            out[name] = int(addr, 16)
    return out


#: /proc/kallsyms names of the other text allocators -> exec list kind
TEXT_KINDS = {"kprobe_insn_page": "kprobe-insn", "kprobe_optinsn_page": "kprobe-optinsn",
              "ftrace_trampoline": "ftrace-trampoline"}


def _kallsyms_text(truth: Dict[str, Any]) -> List[Tuple[str, int]]:
    """(kind, address) of each kprobe slot page and ftrace trampoline in /proc/kallsyms."""
    out = []
    for line in truth.get("kallsyms_text", []):
        addr, _t, name = line.split()[:3]
        if name in TEXT_KINDS:
            out.append((TEXT_KINDS[name], int(addr, 16)))
    return sorted(out)


def _modules(truth: Dict[str, Any]) -> List[str]:
    return sorted(line.split()[0] for line in truth["modules"].splitlines() if line.strip())


def _commands(lab: Any, outdir: str, tag: str) -> List[List[str]]:
    truth = _truth(lab)
    cmds = [["--json", "exec", "list"], ["--json", "exec", "packs"], ["exec", "list"], ["exec", "packs"],
            ["--json", "exec", "cache"], ["exec", "cache"],
            ["--json", "vmalloc", "list", "--kind", "exec"]]
    for p in truth["progs"]:
        cmds.append(["whatis", hex(int(_kallsyms_progs(truth)[f"bpf_prog_{p['tag']}_{p['name']}"]) + 5)])
        cmds.append(["--json", "exec", "dump", p["name"], "-o", f"{outdir}/{tag}-{p['name']}.bin"])
    text = truth["sections"]["kcoretool_test"][".text"]
    cmds.append(["whatis", hex(text + 3)])
    for _kind, addr in _kallsyms_text(truth):
        cmds.append(["whatis", hex(addr + 1)])
    for addr in _kallsyms_bpf_images(truth).values():
        cmds.append(["whatis", hex(addr + 1)])
    return cmds


def _run_host(argvs: List[List[str]]) -> List[Dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cp = subprocess.run([sys.executable, "-m", "tests.lab.in_guest.cli", json.dumps(argvs)], capture_output=True,
                        text=True, timeout=1800, cwd=str(REPO_ROOT), env=env)
    assert cp.returncode == 0, cp.stderr[-2000:]
    return json.loads(cp.stdout)


def _run_guest(lab: Any, argvs: List[List[str]]) -> List[Dict[str, Any]]:
    rc, out, err = lab.run([sys.executable, "-m", "tests.lab.in_guest.cli", json.dumps(argvs)], timeout=1800)
    assert rc == 0, err[-2000:]
    return json.loads(out)


def _sources(lab: Any, live: bool) -> List[Tuple[str, List[str]]]:
    """(label, global options) for each source x debug-info mode."""
    out = []
    for mode in MODES:
        dbg = ["--debuginfo", mode] + (["--vmlinux", str(lab.vmlinux)] if mode == "dwarf" else [])
        if live:
            out.append((f"live-{mode}", dbg))
        else:
            for d in DUMPS:
                out.append((f"{d}-{mode}", ["-c", str(lab.snapshot.paths[d])] + dbg))
    return out


def _check(lab: Any, label: str, cmds: List[List[str]], res: List[Dict[str, Any]], outdir: str) -> None:
    truth = _truth(lab)
    for argv, r in zip(cmds, res):
        assert r["rc"] == 0, f"{label}: {' '.join(argv)} -> {r['rc']}: {r['err'][-800:]}"
    outs = {" ".join(a): r["out"] for a, r in zip(cmds, res)}
    rows = json.loads(outs["--json exec list"])
    ks = _kallsyms_progs(truth)

    # Every BPF program of /proc/kallsyms, at its address, with its tag and name.
    progs = {r["symbol"]: r for r in rows if r["kind"] == "bpf-prog"}
    assert set(ks) <= set(progs) | {a for r in progs.values() for a in r.get("aliases", [])}, label
    for sym, addr in ks.items():
        if sym in progs:
            assert progs[sym]["start"] == addr, (label, sym)
    for p in truth["progs"]:
        sym = f"bpf_prog_{p['tag']}_{p['name']}"
        r = progs[sym]
        assert (r["start"], r["size"], r["owner"], r["tag"], r["id"], r["prog_type"]) == \
            (ks[sym], p["jited_len"], p["name"], p["tag"], p["id"], "socket_filter"), (label, r)
        # In a bpf_prog_pack chunk (5.18+), else alone in its own vmap area.
        assert r["area"] is not None and (r["container"] is not None) == SERIES_BY_NAME[lab.kernel].expect.bpf_pack, \
            (label, r)
        assert r["alloc_start"] <= r["start"] < r["end"] <= r["alloc_end"], (label, r)
        assert (r["alloc_end"] - r["alloc_start"]) % 64 == 0 and r["alloc_start"] % 64 == 0
    assert len(rows) == len({(r["start"], r["end"]) for r in rows}), f"{label}: duplicate rows"

    # Every module of /proc/modules; each section inside one of its regions.
    mods = _modules(truth)
    assert sorted({r["owner"] for r in rows if r["kind"].startswith("module-")}) == mods, label
    outside = []
    for mod in mods:
        regions = [(r["start"], r["end"]) for r in rows if r["owner"] == mod and r["kind"].startswith("module-")]
        for sec, addr in truth["sections"].get(mod, {}).items():
            # Init memory is freed after init; its sections keep stale
            # addresses: .init.*, and the full .symtab/.strtab, which
            # layout_symtab() puts in init data (the core keeps a copy).
            if sec.startswith(".init") or sec in (".symtab", ".strtab"):
                continue
            if not any(lo <= addr < hi for lo, hi in regions):
                outside.append((mod, sec, hex(addr)))
        text = [r for r in rows if r["owner"] == mod and r["kind"] == "module-text"]
        assert len(text) == 1, (label, mod)
    assert outside == [], label

    # Packs: every program's chunks inside a pack, counted as used.  Before
    # 5.18 there are none: each image is its own area, whose owner is the program.
    packs = json.loads(outs["--json exec packs"])
    areas = {a["start"]: a for a in json.loads(outs["--json vmalloc list --kind exec"])}
    if not SERIES_BY_NAME[lab.kernel].expect.bpf_pack:
        assert packs == [], label
        for p in truth["progs"]:
            r = progs[f"bpf_prog_{p['tag']}_{p['name']}"]
            a = areas[r["area"]]
            assert a["start"] <= r["alloc_start"] and r["alloc_end"] <= a["end"], (label, r, a)
            assert p["name"] in a["owner"], (label, a)
    for p in truth["progs"] if packs else ():
        r = progs[f"bpf_prog_{p['tag']}_{p['name']}"]
        pack = [k for k in packs if k["start"] <= r["alloc_start"] and r["alloc_end"] <= k["end"]]
        assert len(pack) == 1 and r["container"] == pack[0]["start"], (label, r)
        assert p["name"] in [x["name"] for x in pack[0]["progs"]]
    for k in packs:
        used = k["used_chunks"] * 64
        owned = sum(x["alloc_size"] for x in k["progs"]) + sum(b - a for a, b in k["unattributed"]) + \
            sum(i["end"] - i["start"] for i in k["images"])
        assert owned >= used - 64 * len(k["images"]) and k["free_chunks"] + k["used_chunks"] == k["chunks"], label
        assert k["largest_free_run"] == max((b - a for a, b in k["free_runs"]), default=0)

    # vmalloc list: owners of the exec areas.
    for k in packs:
        assert areas[k["area"]]["owner"] == f"bpf_prog_pack: {len(k['progs'])} progs", label
    for r in rows:
        if r["kind"] == "module-text":
            owner = areas[r["area"]]["owner"]
            if r["container"] is None:
                assert owner == r["owner"], (label, r)
            else:  # inside the execmem ROX cache (7.x): the area is the cache's
                assert owner.startswith("execmem_cache: "), (label, r, owner)

    # The execmem ROX cache (7.x): every module's text inside one of its
    # areas, sub-allocated back to back; used + free = the area.
    cache = json.loads(outs["--json exec cache"])
    assert bool(cache) == SERIES_BY_NAME[lab.kernel].expect.rox_cache, label
    inside = {x["owner"] for c in cache for x in c["ranges"] if x["kind"] == "module-text"}
    if cache:
        assert set(mods) <= inside, (label, set(mods) - inside)
        for c in cache:
            assert 0 < c["used"] + c["free"] <= areas[c["start"]]["size"], (label, c)
            assert not [x for x in c["ranges"] if x["kind"] == "unattributed"], (label, c)

    # whatis and exec dump.
    for p in truth["progs"]:
        sym = f"bpf_prog_{p['tag']}_{p['name']}"
        line = outs[f"whatis {hex(ks[sym] + 5)}"]
        assert f"{hex(ks[sym] + 5)}: bpf prog {p['name']} (tag {p['tag']}, id {p['id']}) +0x5 of " \
               f"{hex(p['jited_len'])}\n" in line, (label, line)
        path = f"{outdir}/{label}-{p['name']}.bin"
        with open(path, "rb") as f:
            assert f.read() == bytes.fromhex(p["jited"]), (label, p["name"])
        d = json.loads(outs[f"--json exec dump {p['name']} -o {path}"])
        assert d["region"]["symbol"] == sym and d["bytes_by_state"] == {"data": p["jited_len"]}, (label, d)
    text = truth["sections"]["kcoretool_test"][".text"]
    region = next(r for r in rows if r["owner"] == "kcoretool_test" and r["start"] <= text < r["end"])
    assert region["kind"] == "module-text"
    line = outs[f"whatis {hex(text + 3)}"]
    assert f"{hex(text + 3)}: module kcoretool_test text +{hex(text + 3 - region['start'])}\n" in line, line

    # kprobe slot pages and ftrace trampolines: the kprobes in_guest/bpf.py set.
    texts = _kallsyms_text(truth)
    assert sorted((r["kind"], r["start"]) for r in rows if r["kind"] in TEXT_KINDS.values()) == texts, label
    for kind, addr in texts:
        r = next(r for r in rows if r["start"] == addr and r["kind"] == kind)
        assert r["area"] is not None, (label, r)
        line = outs[f"whatis {hex(addr + 1)}"]
        assert f"{hex(addr + 1)}: {kind} {r['owner']} +0x1 of {hex(r['size'])}\n" in line, (label, line)

    # BPF trampolines (the fentry program in_guest/bpf.py attached).
    images = _kallsyms_bpf_images(truth)
    got = {r["symbol"]: r["start"] for r in rows if r["kind"] in ("bpf-trampoline", "bpf-dispatcher")}
    assert got == images, label
    for name, addr in images.items():
        r = next(r for r in rows if r["symbol"] == name)
        assert r["area"] is not None, (label, r)
        line = outs[f"whatis {hex(addr + 1)}"]
        assert f"{hex(addr + 1)}: {r['kind']} {name} +0x1 of {hex(r['size'])}\n" in line, (label, line)

    # The table faces agree with the JSON.
    table = outs["exec list"]
    assert re.search(rf"^{hex(ks[next(iter(ks))])} ", table, re.M)
    assert f"{len(rows)} region(s): {len(mods)} module(s), {len(progs)} BPF program(s)" in table


def _all(lab: Any, live: bool, outdir: str) -> None:
    argvs: List[List[str]] = []
    plan = []
    for label, opts in _sources(lab, live):
        cmds = _commands(lab, outdir, label)
        plan.append((label, cmds, len(argvs)))
        argvs += [opts + c for c in cmds]
    res = _run_guest(lab, argvs) if live else _run_host(argvs)
    for label, cmds, i in plan:
        _check(lab, label, cmds, res[i:i + len(cmds)], outdir)


def test_exec_on_every_dump(lab: Any, tmp_path: Any) -> None:
    _all(lab, False, str(tmp_path))


def test_exec_live(lab: Any) -> None:
    outdir = lab.guest.share / "exec-live"
    outdir.mkdir(exist_ok=True)
    _all(lab, True, str(outdir))


def test_exec_truth_sanity(lab: Any) -> None:
    """The guest really had what the checks rely on."""
    t = _truth(lab)
    assert t["sysctl"]["bpf_jit_kallsyms"] == "1" and t["sysctl"]["bpf_jit_harden"] == "0"
    ks = _kallsyms_progs(t)
    assert {f"bpf_prog_{p['tag']}_{p['name']}" for p in t["progs"]} <= set(ks)
    assert len({p["jited_len"] for p in t["progs"]}) >= 4
    dup = {p["name"]: p for p in t["progs"]}
    assert dup["kct_i64"]["tag"] == dup["kct_i64_dup"]["tag"] and dup["kct_i64"]["id"] != dup["kct_i64_dup"]["id"]
    assert "kcoretool_test" in _modules(t) and ".text" in t["sections"]["kcoretool_test"]
    # Both kprobes armed: an ftrace trampoline and at least an insn slot page.
    assert set(t["kprobes"]) == {"kct_entry", "kct_body"}, t["kprobes"]
    kinds = {k for k, _a in _kallsyms_text(t)}
    assert {"kprobe-insn", "ftrace-trampoline"} <= kinds, t["kallsyms_text"]
    # The fentry program got its trampoline.
    assert any(n.startswith("bpf_trampoline_") for n in _kallsyms_bpf_images(t)), t["kallsyms_bpf"]
    assert f"bpf_prog_{t['fentry']['tag']}_kct_fentry" in _kallsyms_progs(t)

