# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile input on the newer surfaces (issue 22): outputs that never
replace a device or widen permissions, snapshot files and ``read --pid``
bounded like dumps, messages that blame the right thing -- each case as a
user sees it: the one line, the exit status, the file's type, bytes, mode
and owner.  The seeded campaign over the same surfaces is
benchmarks/snapshot_campaign.py (test_snapshot_campaign)."""

from __future__ import annotations

import json
import os
import pathlib
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from kcoretool.api import open_core
from kcoretool.errors import KcoreToolError
from kcoretool.model.snapshot import load_snapshot

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "demo" / "demo-6.12.kdump"
TOP = (1 << 64) - 1

pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="no demo fixture")


def run(*args, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run([sys.executable, "-m", "kcoretool", *map(str, args)], capture_output=True, text=True,
                          **kw)


def one_error(r, status=1):
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> pathlib.Path:
    """The demo's snapshot, made once."""
    p = tmp_path_factory.mktemp("snap") / "good.json"
    r = run("-c", DEMO, "vmalloc", "snapshot", "-o", p)
    assert r.returncode == 0, r.stderr
    return p


@pytest.fixture(scope="module")
def phys_bytes() -> bytes:
    with open_core(str(DEMO)) as core:
        return core.read_ex(0x1000, 64, True).data


def _read(out, **kw):
    return run("-c", DEMO, "read", "--physical", "0x1000", "64", "-o", out, **kw)


# -- 1. devices and FIFOs are never replaced -------------------------------------------------------

@pytest.mark.parametrize("writer", [["vmalloc", "snapshot"], ["exec", "dump", "netfs"]])
def test_snapshot_and_exec_dump_write_devices_in_place(writer):
    r = run("-c", DEMO, *writer, "-o", "/dev/null")
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert one_error(run("-c", DEMO, *writer, "-o", "/dev/full")) == (
        "kcoretool: /dev/full: no space left on device; nothing was kept")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_fifo_without_a_reader_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert one_error(_read(fifo, timeout=30)) == f"kcoretool: {fifo}: a FIFO with no reader; start the reader first"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_fifo_with_a_reader_gets_the_bytes(tmp_path, phys_bytes):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        r = _read(fifo)
        assert r.returncode == 0, r.stderr
        assert os.read(fd, 4096) == phys_bytes
    finally:
        os.close(fd)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dev_stdout_is_written_in_place(tmp_path, phys_bytes):
    out = tmp_path / "captured"
    with open(out, "wb") as f:
        r = subprocess.run([sys.executable, "-m", "kcoretool", "-c", str(DEMO), "read", "--physical", "0x1000", "64",
                            "-o", "/dev/stdout"], stdout=f, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == phys_bytes and os.path.islink("/dev/stdout")
    with open(out, "ab") as f:  # >>: our own descriptor, so it appends
        r = subprocess.run([sys.executable, "-m", "kcoretool", "-c", str(DEMO), "read", "--physical", "0x1000", "64",
                            "-o", "/dev/stdout"], stdout=f, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0 and out.read_bytes() == phys_bytes * 2


def test_socket_directory_and_dangling_link_are_refused(tmp_path):
    sock = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    assert one_error(_read(sock)) == f"kcoretool: {sock}: is a socket; give a file name"
    link = tmp_path / "link"
    os.symlink("nowhere", link)
    assert one_error(_read(link)) == (
        f"kcoretool: {link}: a symbolic link to nothing (nowhere); give a file name or the file it should name")
    assert os.readlink(link) == "nowhere" and not (tmp_path / "nowhere").exists()


def test_a_link_to_a_file_replaces_the_file_and_stays_a_link(tmp_path, phys_bytes):
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.bin"
    os.symlink("real.bin", link)
    assert _read(link).returncode == 0
    assert os.path.islink(link) and real.read_bytes() == phys_bytes and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["link.bin", "real.bin"]


# -- 4. permissions: kept when replacing, 0600 when new ---------------------------------------------

@pytest.mark.parametrize("writer", [["read", "--physical", "0x1000", "64"], ["vmalloc", "snapshot"],
                                    ["exec", "dump", "netfs"], ["vmalloc", "dump", "0xff4222ae40555000"]])
def test_every_writer_keeps_the_mode_or_makes_it_private(tmp_path, writer):
    old = tmp_path / "old"
    old.write_bytes(b"old")
    os.chmod(old, 0o600)
    new = tmp_path / "new"
    for out in (old, new):
        r = run("-c", DEMO, *writer, "-o", out)
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_bytes() != b"old"
    os.chmod(old, 0o644)  # a mode the user chose is the user's
    assert run("-c", DEMO, *writer, "-o", old).returncode == 0
    assert stat.S_IMODE(old.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["new", "old"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_the_owner_is_kept(tmp_path):
    out = tmp_path / "theirs"
    out.write_bytes(b"old")
    os.chown(out, 4242, 4343)
    os.chmod(out, 0o640)
    assert _read(out).returncode == 0
    st = out.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4343, 0o640)


# -- 2, 3. read --pid: read's range rules, atomic -o, a cap that says so -----------------------------

@pytest.mark.parametrize("addr, length", [(hex(TOP), "2"), ("0xfffffffffffff000", "0x2000")])
def test_read_pid_past_the_top_is_refused(addr, length):
    r = run("-c", DEMO, "read", "--pid", "1", addr, length, timeout=60)
    assert one_error(r) == (f"kcoretool: {int(addr, 16):#x}+{int(length, 16):#x} runs past the top of the 64-bit "
                            f"address space ({TOP:#x}); shorten the length")


@pytest.mark.parametrize("pid, message", [("99999", "no task with pid 99999; `kcoretool task list` shows them"),
                                          ("2", "pid 2 (kthreadd) is a kernel thread: it has no user memory")])
def test_read_pid_failure_leaves_the_target_as_it_was(tmp_path, pid, message):
    out = tmp_path / "out"
    out.write_bytes(b"old")
    assert one_error(run("-c", DEMO, "read", "--pid", pid, "0x400000", "16", "-o", out)) == f"kcoretool: {message}"
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["out"]


def test_read_pid_says_when_it_caps():
    r = run("-c", DEMO, "read", "--pid", "1", "0x400000", "0x10000000")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == ("kcoretool: note: showing the first 64 MiB (0x400000-0x4400000) of "
                                        "0x10000000 bytes; -o FILE writes all of it")
    assert one_error(run("-c", DEMO, "--json", "read", "--pid", "1", "0x400000", "32M")) == (
        "kcoretool: --json carries at most 16 MiB of data; write the bytes with -o FILE instead")


# -- 5-8. snapshot files: checked before they are expanded ----------------------------------------

def _bad(tmp_path, good, edit=None, text=None, name="bad.json"):
    p = tmp_path / name
    if text is None:
        d = json.loads(good.read_text())
        edit(d)
        text = json.dumps(d)
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return p


def _diff_error(p, good):
    return one_error(run("vmalloc", "diff", p, good, timeout=60))


def test_run_length_bomb_is_refused_before_it_is_expanded(tmp_path, good):
    def bomb(d):
        n = 10 ** 6
        cols = {c: {"runs": [[0, n]]} for c in d["areas"]["columns"]}
        cols.update(start={"delta": {"runs": [[8192, n]]}}, size={"runs": [[4096, n]]},
                    kind={"runs": [["vmalloc", n]]}, lazy={"runs": [[False, n]]})
        d["areas"] = {"count": n, "columns": cols}
    p = _bad(tmp_path, good, bomb)
    t0 = time.monotonic()
    line = _diff_error(p, good)
    assert line == (f"kcoretool: {p}: damaged snapshot: bad value in areas (count 1000000 is more areas than the "
                    f"file can hold (at most {p.stat().st_size}))")
    assert time.monotonic() - t0 < 20


def test_run_counts_that_lie(tmp_path, good):
    def lie(d):
        d["areas"]["columns"]["node"] = {"runs": [[0, 10 ** 9]]}
    p = _bad(tmp_path, good, lie)
    assert _diff_error(p, good) == (f"kcoretool: {p}: damaged snapshot: bad value in areas (node: a column has more "
                                    "than 1000000000 values, not 125)")


@pytest.mark.parametrize("name", ["z.json", "z"])
def test_dev_zero_and_a_link_to_it(tmp_path, good, name):
    link = tmp_path / name
    os.symlink("/dev/zero", link)
    what = ("give a snapshot file written by `vmalloc snapshot`" if name.endswith(".json")
            else "give the path of a vmcore or /proc/kcore")
    assert _diff_error(link, good) == f"kcoretool: {link}: not a regular file (a character device); {what}"


def test_fifo_snapshot_is_refused_without_blocking(tmp_path, good):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert _diff_error(fifo, good) == (f"kcoretool: {fifo}: not a regular file (a FIFO); give a snapshot file "
                                       "written by `vmalloc snapshot`")


def test_too_big_is_refused_unread(tmp_path, good):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(300 << 20)
    assert _diff_error(big, good) == (f"kcoretool: {big}: 314572800 bytes is too big for a snapshot file (at most "
                                      "256 MiB, about 4 million areas)")


@pytest.mark.parametrize("field, value, message", [
    ("kaslr_offset", "0x1000", "kaslr_offset is a string, not null or an integer from 0 to 2^64-1"),
    ("kaslr_offset", 1.5, "kaslr_offset is 1.5 (not an integer), not null or an integer from 0 to 2^64-1"),
    ("time", "now", "time is a string, not null or an integer from -2^63 to 2^63-1"),
    ("time", 2.0, "time is 2.0 (not an integer), not null or an integer from -2^63 to 2^63-1"),
    ("page_size", 0, "page_size 0 is not a page size (a power of two from 4096 to 1048576)"),
    ("page_size", 3, "page_size 3 is not a page size (a power of two from 4096 to 1048576)"),
    ("page_size", -4096, "page_size is -4096, not an integer from 0 to 2^64-1"),
    ("page_size", None, "page_size is null, not an integer from 0 to 2^64-1"),
    ("page_size", "4096", "page_size is a string, not an integer from 0 to 2^64-1"),
    ("page_size", True, "page_size is true, not an integer from 0 to 2^64-1"),
    ("numa", 1, "numa is 1, not true or false"),
    ("release", "\ud800", "release is not valid UTF-8 (a lone surrogate)"),
    ("release", "6.12\x1b[2J", "release holds a control character"),
])
def test_header_fields(tmp_path, good, field, value, message):
    p = _bad(tmp_path, good, lambda d: d.__setitem__(field, value))
    assert _diff_error(p, good) == f"kcoretool: {p}: damaged snapshot: bad value in header ({message})"


def test_nan_is_no_json_number(tmp_path, good):
    p = _bad(tmp_path, good, lambda d: d.__setitem__("page_size", float("nan")))
    assert _diff_error(p, good) == (f"kcoretool: {p}: not a kcoretool vmalloc snapshot (not JSON: NaN is not a "
                                    "JSON number)")


@pytest.mark.parametrize("column, value, message", [
    ("start", 1.5, "start: a delta is 1.5 (not an integer)"),
    ("size", 4096.0, "size is 4096.0 (not an integer)"),
    ("kind", ["a"], "kind is a list"),
    ("kind", {"k": 1}, "kind is an object"),
    ("caller", [], "caller has a value in an area without a vm_struct"),
    ("nr_pages", {"n": 1}, "nr_pages is an object"),
    ("lazy", 0, "lazy is 0"),
])
def test_area_values(tmp_path, good, column, value, message):
    def edit(d):
        col = d["areas"]["columns"][column]
        seq = col if isinstance(col, list) else col.get("delta", col.get("index"))
        if isinstance(seq, dict):
            seq = seq["runs"][0]
        if column in ("kind", "caller", "lazy"):
            d["areas"]["columns"][column] = [value] * d["areas"]["count"]
        else:
            seq[0] = value
    p = _bad(tmp_path, good, edit)
    assert _diff_error(p, good) == f"kcoretool: {p}: damaged snapshot: bad value in areas ({message})"


def test_caller_symbols(tmp_path, good):
    def table(sym):
        def edit(d):
            d["areas"]["columns"]["caller_symbol"]["table"][0] = sym
        return edit
    p = _bad(tmp_path, good, table(5))
    assert _diff_error(p, good) == f"kcoretool: {p}: damaged snapshot: bad value in areas (caller_symbol is 5)"
    p = _bad(tmp_path, good, table("kct_grow\udce9"))
    assert _diff_error(p, good) == (f"kcoretool: {p}: damaged snapshot: bad value in areas (caller_symbol is not "
                                    "valid UTF-8 (a lone surrogate))")
    r = run("vmalloc", "diff", good, p)
    assert r.returncode == 1 and r.stdout == ""  # refused before a byte of output


@pytest.mark.parametrize("edit, message", [
    ("duplicate", "area 5 at 0x{s5:x}: the same start as the area before it (0x{s5:x}-0x{e4:x})"),
    ("overlap", "area 5 at 0x{o5:x}: an area before it overlaps it (0x{s4:x}-0x{e4:x})"),
    ("reversed", "area 5 at 0x{r5:x}: out of address order (0x{s4:x}-0x{e4:x})"),
    ("empty", "size is 0, not an integer from 1 to 2^64-1"),
    ("huge", "area 124 at 0x{s124:x} runs past the top of the 64-bit address space"),
])
def test_area_ranges(tmp_path, good, edit, message):
    d = json.loads(good.read_text())
    starts = [0]
    for x in d["areas"]["columns"]["start"]["delta"]:
        starts.append(starts[-1] + x)
    starts = starts[1:]
    sizes = d["areas"]["columns"]["size"]
    deltas = d["areas"]["columns"]["start"]["delta"]
    if edit == "duplicate":
        deltas[5] = 0
    elif edit == "overlap":
        deltas[5] = sizes[4] // 2
    elif edit == "reversed":
        deltas[5] = -8192
    elif edit == "empty":
        sizes[5] = 0
    else:
        sizes[124] = 1 << 63
    p = _bad(tmp_path, good, text=json.dumps(d))
    values = {"s5": starts[4], "e4": starts[4] + sizes[4], "s4": starts[4], "o5": starts[4] + sizes[4] // 2,
              "r5": starts[4] - 8192, "s124": starts[124]}
    assert _diff_error(p, good) == (f"kcoretool: {p}: damaged snapshot: bad value in areas "
                                    f"({message.format(**values)})")


def test_deep_nesting_blames_the_snapshot(tmp_path, good):
    text = good.read_bytes().replace(b'"release":', b'"release":' + b"[" * 100000, 1)
    p = _bad(tmp_path, good, text=text)
    assert _diff_error(p, good) == (f"kcoretool: {p}: damaged snapshot: JSON nested too deep (no snapshot nests "
                                    "more than a few levels)")


def test_not_utf8(tmp_path, good):
    text = good.read_bytes()
    p = _bad(tmp_path, good, text=text[:100] + b"\xff" + text[100:])
    assert _diff_error(p, good) == (f"kcoretool: {p}: not a kcoretool vmalloc snapshot (not UTF-8 text: byte 0xff "
                                    "at offset 100)")


def test_another_boot_still_works(tmp_path, good):
    p = _bad(tmp_path, good, lambda d: d.update(release="5.10.0-99-amd64", kaslr_offset=0x2a000000))
    r = run("vmalloc", "diff", good, p)
    assert r.returncode == 0, r.stderr
    assert "different" in r.stdout.splitlines()[2]


def test_a_loaded_snapshot_saves_and_loads_the_same(tmp_path, good):
    s = load_snapshot(str(good))
    again = tmp_path / "again.json"
    s.save(str(again))
    assert load_snapshot(str(again)) == s and stat.S_IMODE(again.stat().st_mode) == 0o600
    with pytest.raises(KcoreToolError, match="not a regular file"):
        load_snapshot("/dev/null")


# -- arguments -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "1e300"])
def test_top_delay_must_be_a_finite_number_of_seconds(value):
    r = run("vmalloc", "top", "-d", value)
    assert r.returncode == 2
    assert f"Error: Invalid value for --delay: {float(value):g}: give seconds above 0, at most 86400 (a day)" \
        in r.stderr.splitlines()


@pytest.mark.parametrize("value", ["abc", "", "-4K", "0x10K", "ffff"])
def test_min_delta_is_a_size_not_an_address(good, value):
    r = run("vmalloc", "diff", good, good, "--min-delta", value)
    assert r.returncode == 2
    assert (f"Error: Invalid value for --min-delta: {value!r} is not a size (use 4096, 0x1000 or 4K)"
            in r.stderr.splitlines())


def test_min_delta_sizes(good):
    for value in ("4K", "0x1000", "4096"):
        r = run("vmalloc", "diff", good, good, "--min-delta", value, "--summary")
        assert r.returncode == 0 and r.stdout.splitlines()[-1].endswith("(filtered)")


# -- 9. the right blame -----------------------------------------------------------------------------

def test_damaged_compressed_pages_are_not_missing_debug_info(tmp_path):
    from kcoretool.source.kdumpcheck import DESC, check_kdump

    blob = bytearray(DEMO.read_bytes())
    with open(DEMO, "rb") as f:
        lay = check_kdump(str(DEMO), f, len(blob))
    rng = random.Random(22)
    for off in range(lay.desc_offset + lay.dumped_pages * DESC.size, len(blob), 4096):
        blob[off:off + 64] = bytes(rng.randrange(256) for _ in range(64))
    bad = tmp_path / "damaged.kdump"
    bad.write_bytes(blob)
    line = one_error(run("-c", bad, "vmalloc", "list"))
    assert line.startswith("kcoretool: the kernel's kallsyms tables are unreadable (cannot read kernel memory at 0x")
    assert line.endswith("Decompresion failed: incorrect header check)): the core is damaged or lacks those pages; "
                         "--vmlinux with DWARF does without them")


def test_unreadable_tasks_are_not_a_missing_pid():
    from kcoretool.api import from_program
    from tests.synth.tasks import demo_process

    k, _ = demo_process("6.12")
    off = k.img.offsetof("task_struct", "tasks")
    prev = k.img.r64(k.tasks[100] + off + 8)
    k.img.w64(prev, 0xFFFFEEEE00000000 + off)  # the list runs into memory the core lacks
    with pytest.raises(KcoreToolError) as e:
        from_program(k.prog).vmas(100)
    assert str(e.value) == ("pid 100 is not among the tasks that could be read: 1 task(s) or task lists are "
                            "unreadable (first: init_task.tasks: entry 0xffffeeee00000000 is unreadable after 1 "
                            "entries); the core is damaged or lacks those pages")


def test_top_inside_drgn_says_what_is_true(capsys):
    from kcoretool.api import open_kernel
    from kcoretool.cli import run_in_program

    k = open_kernel(str(DEMO))
    assert run_in_program(k.prog, ["vmalloc", "top", "-n", "1"]) == 1
    assert capsys.readouterr().err == ("kcoretool: vmalloc top watches a live kernel (/proc/kcore); drgn's program is "
                                       "a saved core: compare saved states with `vmalloc diff A B`\n")


# -- Ctrl-C and full disks -------------------------------------------------------------------------

def _wait_for_sigint_handler(pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
        except (OSError, StopIteration):
            return
        if caught & (1 << (signal.SIGINT - 1)):
            return
        time.sleep(0.01)


def test_sigint_during_snapshot_leaves_no_temporary(tmp_path):
    rng = random.Random(22)
    for n in range(3):
        out = tmp_path / f"s{n}.json"
        p = subprocess.Popen([sys.executable, "-m", "kcoretool", "-c", str(DEMO), "vmalloc", "snapshot", "-o",
                              str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_sigint_handler(p.pid)
        time.sleep(rng.uniform(0.1, 1.5))
        p.send_signal(signal.SIGINT)
        _, stderr = p.communicate(timeout=120)
        if p.returncode == 0:
            assert load_snapshot(str(out)).model.nr_areas == 125
        else:
            assert p.returncode == 130 and stderr == "kcoretool: interrupted\n"
            assert not out.exists()
        assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_extract_rerun_on_a_filling_disk_keeps_the_earlier_run(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "x"
        r = run("-c", DEMO, "vmalloc", "extract", "--caller", "kct_*", "-o", out)
        assert r.returncode == 0, r.stderr
        before = {n: (out / n).read_bytes() for n in os.listdir(out)}
        assert len(before) > 2
        # fill the disk but for a little: the rerun cannot fit beside the first run
        st = os.statvfs(mnt)
        with open(mnt / "filler", "wb") as f:
            f.write(b"\0" * (st.f_bavail * st.f_frsize - 32768))
        r = run("-c", DEMO, "vmalloc", "extract", "--caller", "kct_*", "-o", out)
        line = one_error(r)
        assert line.startswith(f"kcoretool: {out}/") and line.endswith(": no space left on device; nothing was kept")
        assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
        os.unlink(mnt / "filler")
        r = run("-c", DEMO, "vmalloc", "extract", "--caller", "kct_*", "-o", out)
        assert r.returncode == 0, r.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert all((out / a["file"]).exists() for a in manifest["areas"])
        assert stat.S_IMODE((out / "manifest.json").stat().st_mode) == 0o600
    finally:
        subprocess.run(["umount", str(mnt)])


# -- the campaign -----------------------------------------------------------------------------------

@pytest.mark.campaign
def test_snapshot_campaign():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "snapshot_campaign.py"), "--cases", "5000",
                        "--seed", "22", "--timeout", "60"], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    head = r.stdout.splitlines()
    assert head[0].startswith("snapshot and output campaign: seed 22, 5000 cases in ")
    counts = dict(re.findall(r"^([a-z0-9 ]+?) +(\d+)$", r.stdout, re.M))
    for key in ("tracebacks", "signal deaths", "timeouts", "wrong exit 0", "not one line", "wrong files"):
        assert counts[key] == "0", key


def test_a_damaged_dumps_bad_areas_are_left_out_of_its_snapshot_and_said(tmp_path, good):
    import copy

    s = load_snapshot(str(good))
    areas = s.model.areas
    bad = copy.copy(areas[5])
    bad.start = areas[4].start + 4096  # overlaps areas[4], as a damaged dump's walk can give
    bad.vmap_area = 0xFFFF888000123400
    s.model.areas = areas[:5] + [bad] + areas[6:]
    out = tmp_path / "s.json"
    s.save(str(out))
    back = load_snapshot(str(out))
    assert back.model.nr_areas == 124
    assert back.model.warnings[-1] == (
        f"snapshot: areas: vmap_area 0xffff888000123400 ({bad.start:#x}-{bad.end:#x}) left out: area 1 at "
        f"{bad.start:#x}: an area before it overlaps it ({areas[4].start:#x}-{areas[4].end:#x})")
