"""Hostile input and interruption at the CLI (issue 14): exact one-line
messages and exit statuses, Ctrl-C during `vmalloc extract`, full disks,
and a seeded slice of benchmarks/hostile_campaign.py."""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "fixtures"
DEMO = FIX / "demo" / "demo-6.12.kdump"
ELF = FIX / "vmcore-6.1.core"
TOP = (1 << 64) - 1


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "kcoretool", *map(str, args)], capture_output=True, text=True,
                          **kw)


def one_error(r, status=1):
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


# -- cores that are not cores ---------------------------------------------------

def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run("-c", fifo, "info", timeout=30)
    assert one_error(r) == (f"kcoretool: {fifo}: not a regular file (a FIFO); "
                            "give the path of a vmcore or /proc/kcore")


def test_device_is_refused():
    assert one_error(run("-c", "/dev/zero", "info")) == (
        "kcoretool: /dev/zero: not a regular file (a character device); give the path of a vmcore or /proc/kcore")


def test_kdump_cut_in_its_headers(tmp_path):
    t = tmp_path / "t"
    t.write_bytes(DEMO.read_bytes()[:4200])
    assert one_error(run("-c", t, "vmalloc", "list")) == (
        f"kcoretool: {t}: kdump file truncated at 4200 bytes; its header says 12288 \u2014 the dump is incomplete")


def test_kdump_header_only_fixture():
    p = FIX / "kdump-header-only.core"
    assert one_error(run("-c", p, "vmalloc", "list")) == (
        f"kcoretool: {p}: kdump file truncated at 464 bytes; its header says 4096 \u2014 the dump is incomplete")


def test_kdump_cut_in_page_data_info_says_what_is_missing(tmp_path):
    t = tmp_path / "t"
    t.write_bytes(DEMO.read_bytes()[:20000000])
    r = run("-c", t, "info")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].startswith("dump          INCOMPLETE: ")
    assert "dumped pages lie past the end of the file" in r.stdout
    info = json.loads(run("-c", t, "--json", "info").stdout)
    assert info["incomplete"].endswith("the file is 3116064 bytes short)")


def test_vmcoreinfo_garbage_is_one_line():
    r = run("-c", FIX / "hostile" / "vmcoreinfo-garbage.core", "vmalloc", "list")
    assert one_error(r) == "kcoretool: drgn cannot interpret the core: number in VMCOREINFO is invalid"


# -- addresses and arguments ------------------------------------------------------

@pytest.mark.parametrize("args", [("read", "0x10000000000000000", "16"), ("read", "--physical", "0x10000000000000000"),
                                  ("whatis", "0x10000000000000000")])
def test_address_past_2_64(args):
    assert one_error(run("-c", ELF, *args)) == (
        "kcoretool: address '0x10000000000000000' is beyond the 64-bit address space "
        "(the last address is 0xffffffffffffffff)")


def test_read_across_the_top_of_the_address_space_ends():
    r = run("-c", ELF, "read", hex(TOP - 15), "0x20", timeout=60)
    assert one_error(r) == ("kcoretool: 0xfffffffffffffff0+0x20 runs past the top of the 64-bit address "
                            "space (0xffffffffffffffff); shorten the length")


def test_vmalloc_check_on_a_vmcore_says_live_only():
    assert one_error(run("-c", ELF, "vmalloc", "check")) == (
        f"kcoretool: vmalloc check is live only: it compares /proc/kcore with the page tables of the running "
        f"kernel, and {ELF} is a saved elf-vmcore; run it as root on the machine itself (-c /proc/kcore)")


@pytest.mark.parametrize("align", ["0", "3", "12K"])
def test_align_must_be_a_power_of_two(align):
    r = run("-c", ELF, "vmalloc", "free", "--fits", "4K", "--align", align)
    assert r.returncode == 2
    assert f"Invalid value for --align: {align}: an alignment is a power of two" in r.stderr


# -- output files -------------------------------------------------------------------

def test_output_into_a_missing_directory(tmp_path):
    out = tmp_path / "missing" / "f"
    assert one_error(run("-c", ELF, "read", "--physical", "0x1000", "16", "-o", out)) == (
        f"kcoretool: {out}: cannot create it: directory {out.parent} does not exist")


def test_output_onto_a_directory(tmp_path):
    assert one_error(run("-c", ELF, "read", "--physical", "0x1000", "16", "-o", tmp_path)) == (
        f"kcoretool: {tmp_path}: is a directory; give a file name")


def test_output_onto_an_existing_file_replaces_it_whole(tmp_path):
    out = tmp_path / "f"
    out.write_bytes(b"x" * 100)
    r = run("-c", ELF, "read", "--physical", "0x1000", "16", "-o", out)
    assert r.returncode == 0, r.stderr
    assert len(out.read_bytes()) == 16
    assert os.listdir(tmp_path) == ["f"]


def test_extract_onto_an_existing_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    r = run("-c", DEMO, "vmalloc", "extract", "--caller", "kct_*", "-o", f)
    assert one_error(r) == f"kcoretool: {f}: exists and is not a directory; give a directory for the files"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_without_permission(tmp_path):
    d = tmp_path / "ro"
    d.mkdir(mode=0o500)
    r = run("-c", ELF, "read", "--physical", "0x1000", "16", "-o", d / "f")
    assert one_error(r) == f"kcoretool: {d / 'f'}: cannot write: Permission denied"


def test_dev_full_and_full_stdout():
    r = run("-c", ELF, "read", "--physical", "0x1000", "16", "-o", "/dev/full")
    assert one_error(r) == "kcoretool: /dev/full: no space left on device; nothing was kept"
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "kcoretool", "-c", str(ELF), "info"], stdout=full,
                           stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1 and r.stderr == "kcoretool: no space left on device; the output is incomplete\n"


def test_closed_stdout():
    r = subprocess.run([sys.executable, "-m", "kcoretool", "-c", str(ELF), "info"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))
    assert r.returncode == 1
    assert r.stderr == "kcoretool: standard output is closed; redirect it instead (e.g. >/dev/null)\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_extract_onto_a_full_disk_leaves_nothing(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "x"
        r = run("-c", DEMO, "vmalloc", "extract", "-o", out)
        line = one_error(r)
        assert line.startswith(f"kcoretool: {out}/") and line.endswith(": no space left on device; nothing was kept")
        assert os.listdir(mnt) == []  # the directory it made, and every file, removed
        r = run("-c", DEMO, "vmalloc", "dump", "0xff4222ae40800000", "-o", mnt / "big")
        assert one_error(r) == f"kcoretool: {mnt / 'big'}: no space left on device; nothing was kept"
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)])


# -- Ctrl-C ---------------------------------------------------------------------------

def _wait_for_sigint_handler(pid: int, timeout: float = 60.0) -> None:
    """Until the process catches SIGINT (/proc/PID/status SigCgt): on a busy
    machine the interpreter alone can take over half a second to start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
        except (OSError, StopIteration):
            return  # gone already
        if caught & (1 << (signal.SIGINT - 1)):
            return
        time.sleep(0.01)


@pytest.mark.skipif(not DEMO.exists(), reason="no demo fixture")
def test_sigint_during_extract(tmp_path):
    rng = random.Random(14)
    for n in range(3):
        out = tmp_path / f"x{n}"
        p = subprocess.Popen([sys.executable, "-m", "kcoretool", "-c", str(DEMO), "vmalloc", "extract", "-o",
                              str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_sigint_handler(p.pid)  # before that it is the interpreter starting, not kcoretool
        time.sleep(rng.uniform(0.3, 3.5))
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=120)
        if p.returncode == 0:  # finished first: then everything is whole
            manifest = json.loads((out / "manifest.json").read_text())
            assert sorted(os.listdir(out)) == sorted([a["file"] for a in manifest["areas"]] + ["manifest.json"])
            continue
        assert p.returncode == 130, stderr
        assert stderr == "kcoretool: interrupted\n"
        # Nothing that looks complete: no manifest, no file, no temporary.
        assert not out.exists() or os.listdir(out) == []


# -- the campaign ---------------------------------------------------------------------

@pytest.mark.campaign
def test_hostile_campaign_slice():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hostile_campaign.py"), "--cases", "120",
                        "--seed", "7", "--timeout", "30"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tracebacks         0" in r.stdout and "signal deaths      0" in r.stdout
