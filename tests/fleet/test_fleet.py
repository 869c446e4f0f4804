"""
``kcoretool fleet`` (issue 26) on a mixed fleet made from the committed demo
dump (tests/fleetgen.py): four normal boots (hard links under distinct
names), two leaking boots (the test module's ``kct_make_vmalloc_huge``
pages x6 and x12, rewritten in the kdump's pages) and two damaged dumps.
Every scan runs the real CLI in a subprocess; the Dask tests run a real
LocalCluster with worker processes on loopback.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Dict, List

import pytest

from tests.fleetgen import DEMO, LEAKING_CALLER, mixed_fleet

ROOT = pathlib.Path(__file__).resolve().parents[2]


def kcoretool(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kcoretool", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, **kw)


def rows_of(path) -> List[Dict]:
    data = pathlib.Path(path).read_bytes()
    assert data.endswith(b"\n") or not data, data[-200:]
    return [json.loads(line) for line in data.splitlines()]


def keys(rows):
    return [(r["path"], r["size"], r["mtime_ns"]) for r in rows]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleet")
    made = mixed_fleet(str(d / "dumps"))
    made["dir"] = str(d / "dumps")
    return made


def _all(fleet):
    return fleet["normal"] + fleet["leaking"] + fleet["damaged"]


def _check_fleet_rows(fleet, rows):
    assert sorted(r["path"] for r in rows) == sorted(_all(fleet))
    assert len(set(keys(rows))) == len(rows)  # no dump twice
    by = {os.path.basename(r["path"]): r for r in rows}
    for p in fleet["normal"] + fleet["leaking"]:
        r = by[os.path.basename(p)]
        assert r["status"] == "ok", r
        assert (r["format"], r["release"], r["debuginfo"]) == ("kdump", "6.12.117+deb12-amd64", "btf")
        assert r["tasks"] == {"count": 59, "max_rss_pages": 3563, "max_rss_pid": 1, "max_rss_comm": "python"}
        assert r["vmalloc"]["lazy_pages"] == 14 and r["vmalloc"]["lazy_max_pages"] == 16384
        assert r["exec"]["module-text"] == [6, 45, 184320]
        # the demo guest is clean: every executable byte has its owner
        assert r["exec_audit"] == {"flags": 0, "reasons": {}, "executable_bytes": 19066880, "unowned_bytes": 0}
        assert r["panicking"] is False and r["panic_reason"] is None
    assert by["boot-0.kdump"]["vmalloc"]["callers"][LEAKING_CALLER] == [2, 1026, 4210688]
    assert by["leak-x6.kdump"]["vmalloc"]["callers"][LEAKING_CALLER][1] == 6 * 1026
    assert by["leak-x12.kdump"]["vmalloc"]["callers"][LEAKING_CALLER][1] == 12 * 1026
    # the other callers of a leaking boot are those of the demo
    a, b = dict(by["boot-0.kdump"]["vmalloc"]["callers"]), dict(by["leak-x6.kdump"]["vmalloc"]["callers"])
    a.pop(LEAKING_CALLER), b.pop(LEAKING_CALLER)
    assert a == b
    assert by["damaged-header.kdump"]["status"] == "error"
    assert by["damaged-header.kdump"]["error"].endswith(
        "damaged-header.kdump: kdump header is damaged: block size -1 is not a power of two between 512 and 1 MiB; "
        "the file cannot be read")
    cut = by["damaged-cut.kdump"]
    assert cut["status"] == "error" and "\n" not in cut["error"]
    # the row says the file is cut, and so does its error; it keeps what the headers said, nothing half-scanned
    assert " dumped pages lie past the end of the file (" in cut["incomplete"]
    assert cut["error"].endswith(f" (the dump is incomplete: {cut['incomplete']})")
    assert set(cut) == {"schema", "path", "size", "mtime_ns", "format", "incomplete", "release", "status", "error",
                        "elapsed_s", "attempts", "worker", "worker_maxrss_kib"}
    assert (cut["format"], cut["release"]) == ("kdump", "6.12.117+deb12-amd64")
    assert by["boot-0.kdump"]["incomplete"] is None


def test_scan_report_and_rerun_on_the_local_pool(fleet, tmp_path):
    out = tmp_path / "fleet.jsonl"
    r = kcoretool("fleet", "scan", fleet["dir"], "-o", str(out), "-j", "2")
    assert r.returncode == 0, r.stderr
    rows = rows_of(out)
    _check_fleet_rows(fleet, rows)
    assert r.stderr.splitlines()[-1].startswith(
        f"kcoretool: fleet scan: 8 dump(s), 0 already in {out}; wrote 8 row(s): 6 ok, 2 unreadable, 0 failed; ")
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    # the report names the leaking boots, with their factor, and nothing else
    r = kcoretool("fleet", "report", str(out), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert [(os.path.basename(o["path"]), o["kind"], o["name"], o["pages"], o["median"], o["factor"])
            for o in rep["outliers"]] == [
        ("leak-x12.kdump", "caller", LEAKING_CALLER, 12312, 1026.0, 12.0),
        ("leak-x6.kdump", "caller", LEAKING_CALLER, 6156, 1026.0, 6.0)]
    rel = next(x for x in rep["releases"] if x["release"] == "6.12.117+deb12-amd64")
    # the cut dump's release is in its headers: it counts there; the damaged header's is not
    assert (rel["dumps"], rel["ok"], rel["error"], rel["failed"]) == (7, 6, 1, 0)
    top = rep["callers"][0]
    assert (top["caller"], top["dumps"], top["pages"], top["max_pages"]) == (
        LEAKING_CALLER, 6, 4 * 1026 + 18 * 1026, 12312)
    assert sorted(os.path.basename(u["path"]) for u in rep["unreadable"]) == ["damaged-cut.kdump",
                                                                             "damaged-header.kdump"]
    r = kcoretool("fleet", "report", str(out), "--factor", "8")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith("6.12.117+deb12-amd64  caller")]
    assert len(lines) == 1 and lines[0].split()[2:6] == [LEAKING_CALLER, "12312", "1026", "12.0x"], r.stdout

    # a re-run appends nothing; a dump whose mtime changed is a new dump
    before = out.read_bytes()
    r = kcoretool("fleet", "scan", fleet["dir"], "-o", str(out))
    assert r.returncode == 0 and out.read_bytes() == before, r.stderr
    assert "8 dump(s), 8 already in" in r.stderr and "wrote 0 row(s)" in r.stderr
    st = os.stat(fleet["normal"][0])
    os.utime(fleet["normal"][0], ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # hard links: boot-0..3 are one inode
    r = kcoretool("fleet", "scan", fleet["dir"], "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert "8 dump(s), 4 already in" in r.stderr and "wrote 4 row(s): 4 ok" in r.stderr
    rows = rows_of(out)
    assert len(rows) == 12 and len(set(keys(rows))) == 12
    assert r.stderr.count("\n") == 1  # -q: the summary only


def _holders(path: str) -> List[int]:
    """Pids (not ours) with ``path`` open."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    pids.append(int(pid))
                    break
            except OSError:
                continue
    return pids


def _kill_holders(proc, path: str, times: int, deadline: float = 120) -> int:
    """SIGKILL each process that opens ``path`` until ``times`` were killed
    or ``proc`` ended; returns how many."""
    killed = set()
    t0 = time.monotonic()
    while len(killed) < times and proc.poll() is None and time.monotonic() - t0 < deadline:
        for pid in _holders(path):
            if pid != proc.pid and pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.005)
    return len(killed)


def _popen(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kcoretool", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **kw)


def test_a_killed_local_worker_costs_its_dump_only_retried_then_failed(fleet, tmp_path):
    target = fleet["leaking"][1]
    out = tmp_path / "fleet.jsonl"
    # killed once: retried, and the row says it took 2 attempts
    p = _popen("fleet", "scan", fleet["dir"], "-o", str(out), "-j", "2", "--retries", "1")
    assert _kill_holders(p, target, 1) == 1
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    rows = rows_of(out)
    _check_fleet_rows(fleet, rows)
    row = next(r for r in rows if r["path"] == target)
    assert (row["status"], row["attempts"]) == ("ok", 2)
    assert all(r["attempts"] == 1 for r in rows if r["path"] != target)

    # killed every time: recorded as failed after 1 + retries attempts
    out2 = tmp_path / "fleet2.jsonl"
    p = _popen("fleet", "scan", *fleet["leaking"], *fleet["normal"][:1], "-o", str(out2), "-j", "2",
               "--retries", "1")
    assert _kill_holders(p, target, 2) == 2
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    rows = rows_of(out2)
    assert len(rows) == 3
    row = next(r for r in rows if r["path"] == target)
    assert row == {"schema": "kcoretool-fleet/1", "path": target, "size": os.path.getsize(target),
                   "mtime_ns": os.stat(target).st_mtime_ns, "status": "failed", "attempts": 2,
                   "error": "the worker died each of 2 times it scanned this dump (last: killed by SIGKILL)"}
    assert f"kcoretool: failed: {target}: the worker died each of 2 times" in err
    # a re-run does not try a failed dump again: it is in the file
    r = kcoretool("fleet", "scan", *fleet["leaking"], *fleet["normal"][:1], "-o", str(out2))
    assert r.returncode == 0 and "3 already in" in r.stderr


def test_ctrl_c_keeps_the_finished_rows_and_a_rerun_completes(fleet, tmp_path):
    out = tmp_path / "fleet.jsonl"
    p = _popen("fleet", "scan", fleet["dir"], "-o", str(out), "-j", "1", start_new_session=True)
    t0 = time.monotonic()
    while (not out.exists() or out.read_bytes().count(b"\n") < 2) and time.monotonic() - t0 < 120:
        time.sleep(0.01)
    children = [int(x) for x in pathlib.Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()]
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.splitlines()[-1] == "kcoretool: interrupted"
    rows = rows_of(out)
    assert 2 <= len(rows) < 8 and len(set(keys(rows))) == len(rows)
    for c in children:  # no worker outlives the scan
        assert not pathlib.Path(f"/proc/{c}").exists() or "Z" in pathlib.Path(f"/proc/{c}/stat").read_text()
    r = kcoretool("fleet", "scan", fleet["dir"], "-o", str(out), "-j", "2")
    assert r.returncode == 0, r.stderr
    assert f"8 dump(s), {len(rows)} already in" in r.stderr
    _check_fleet_rows(fleet, rows_of(out))


_CTRL_C_IN_FORK = """
import os, signal, sys
# the Ctrl-C arrives while fork() runs the parent's at-fork hooks, where
# Python prints and ignores whatever a signal handler raises (seen in CI:
# the scan went on and exited 0)
os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), signal.SIGINT))
sys.argv = ["kcoretool", "fleet", "scan", *sys.argv[1:]]
from kcoretool.__main__ import main
main()
"""


def test_ctrl_c_during_a_workers_fork_is_not_lost(fleet, tmp_path):
    out = tmp_path / "fleet.jsonl"
    r = subprocess.run([sys.executable, "-c", _CTRL_C_IN_FORK, *fleet["normal"][:2], "-o", str(out), "-j", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert (r.returncode, r.stderr.splitlines()[-1:]) == (130, ["kcoretool: interrupted"]), r.stderr
    assert "Exception ignored" not in r.stderr
    assert not out.exists() or rows_of(out) == []


def test_a_torn_last_line_is_cut_and_its_dump_scanned_again(fleet, tmp_path):
    out = tmp_path / "fleet.jsonl"
    r = kcoretool("fleet", "scan", *fleet["damaged"], "-o", str(out))
    assert r.returncode == 0, r.stderr
    whole = out.read_bytes()
    lines = whole.splitlines(keepends=True)
    # a writer killed in the middle of its second row
    out.write_bytes(lines[0] + lines[1][:37])
    r = kcoretool("fleet", "scan", *fleet["damaged"], "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert (f"kcoretool: warning: {out}: line 2 was torn (37 bytes without a newline: a scan killed while "
            "writing it); cut it off, its dump is scanned again") in r.stderr
    assert "2 dump(s), 1 already in" in r.stderr
    assert rows_of(out)[0] == json.loads(lines[0]) and len(rows_of(out)) == 2
    # a whole row that only lost its newline is kept, not scanned again
    data = out.read_bytes()
    out.write_bytes(data[:-1])
    r = kcoretool("fleet", "scan", *fleet["damaged"], "-o", str(out))
    assert r.returncode == 0 and "2 dump(s), 2 already in" in r.stderr, r.stderr
    assert f"{out}: line 2 had lost its newline; added it (the row is whole)" in r.stderr
    assert out.read_bytes() == data
    # a report leaves a torn line out, and says so
    out.write_bytes(data + b'{"schema":"kcoretool-fle')
    r = kcoretool("fleet", "report", str(out), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["dumps"] == 2
    assert f"kcoretool: warning: {out}: line 3 is torn (24 bytes, no newline" in r.stderr


def test_what_is_not_a_fleet_file_is_refused_untouched(fleet, tmp_path):
    bad = tmp_path / "notes.jsonl"
    bad.write_bytes(b'{"schema":"kcoretool-fleet/1","path":"/x","size":1,"mtime_ns":1,"status":"ok"}\n'
                    b'{"hello": 1}\n')
    before = bad.read_bytes()
    r = kcoretool("fleet", "scan", DEMO, "-o", str(bad))
    assert r.returncode == 1
    assert r.stderr == (f"kcoretool: {bad}: line 2: not a kcoretool fleet row (schema None, not "
                        "'kcoretool-fleet/1'); it is not a fleet file or was edited: fix that line or give "
                        "another -o\n")
    assert bad.read_bytes() == before
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = kcoretool("fleet", "scan", DEMO, "-o", str(fifo), timeout=30)
    assert r.returncode == 1 and r.stderr == (f"kcoretool: {fifo}: is a FIFO; fleet scan appends rows to a regular "
                                              "file and reads them back to resume\n")
    r = kcoretool("fleet", "scan", DEMO, "-o", "/dev/null")
    assert r.returncode == 1 and r.stderr == ("kcoretool: /dev/null: is a character device; fleet scan appends "
                                              "rows to a regular file and reads them back to resume\n")
    r = kcoretool("fleet", "scan", str(tmp_path / "nothing-*.kdump"), "-o", str(tmp_path / "f.jsonl"))
    assert r.returncode == 0
    assert f"kcoretool: warning: {tmp_path}/nothing-*.kdump: matches no file" in r.stderr


def test_two_scans_never_write_one_file_at_once(fleet, tmp_path):
    import fcntl

    out = tmp_path / "fleet.jsonl"
    with open(out, "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = kcoretool("fleet", "scan", DEMO, "-o", str(out))
    assert r.returncode == 1 and r.stderr == (f"kcoretool: {out}: another fleet scan is writing it; wait "
                                              "for it to finish or give another -o\n")


def test_inputs_globs_listfiles_and_directories(fleet, tmp_path):
    from kcoretool.fleet import expand_inputs

    d = fleet["dir"]
    (tmp_path / "dmesg.txt").write_text("not a dump\n")
    lst = tmp_path / "list.txt"
    lst.write_text(f"# the leaking boots\n{d}/leak-*.kdump\n\n{tmp_path}\n@{tmp_path}/more.txt\n")
    (tmp_path / "more.txt").write_text(f"{fleet['normal'][0]}\n{d}/missing.kdump\n")
    paths, warnings = expand_inputs([f"@{lst}", fleet["normal"][0]])
    assert paths == sorted(fleet["leaking"]) + [fleet["normal"][0]]
    assert warnings == [f"{tmp_path}: no dump files in this directory", f"{d}/missing.kdump: no such file or directory"]


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed", reason="the fleet extra (tests/run.sh installs it)")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close()


def test_dask_cluster_on_loopback_with_a_worker_killed_mid_scan(fleet, tmp_path, dask_cluster):
    address = dask_cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    out = tmp_path / "fleet.jsonl"
    target = fleet["leaking"][0]
    p = _popen("fleet", "scan", fleet["dir"], "-o", str(out), "--dask", address, "--retries", "5")
    assert _kill_holders(p, target, 1) == 1  # a worker process of the cluster, in the middle of its dump
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    rows = rows_of(out)
    _check_fleet_rows(fleet, rows)
    # the scheduler ran the dump again on a worker that lived
    assert next(r for r in rows if r["path"] == target)["status"] == "ok"
    workers = {r["worker"] for r in rows if "worker" in r}
    assert len(workers) >= 2 and all(int(w.rsplit(":", 1)[1]) != p.pid for w in workers)

    # the same fleet through `--dask local:2` gives the same rows but for times and workers
    out2 = tmp_path / "fleet-local.jsonl"
    r = kcoretool("fleet", "scan", fleet["dir"], "-o", str(out2), "--dask", "local:2")
    assert r.returncode == 0, r.stderr
    volatile = ("elapsed_s", "worker", "worker_maxrss_kib", "attempts")
    strip = lambda rs: sorted(({k: v for k, v in x.items() if k not in volatile} for x in rs),
                              key=lambda x: x["path"])
    assert strip(rows_of(out2)) == strip(rows)


def test_a_dask_dump_whose_worker_always_dies_is_failed(fleet, tmp_path, dask_cluster):
    out = tmp_path / "fleet.jsonl"
    target = fleet["leaking"][1]
    p = _popen("fleet", "scan", target, fleet["normal"][1], "-o", str(out), "--dask",
               dask_cluster.scheduler_address)
    # every worker that opens it is killed; allowed-failures 1 on this
    # scheduler: after the second death the dump is given up
    assert _kill_holders(p, target, 1000, deadline=180) >= 2
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    rows = {r["path"]: r for r in rows_of(out)}
    assert rows[fleet["normal"][1]]["status"] == "ok"
    r = rows[target]
    assert (r["status"], r["attempts"]) == ("failed", 2)
    assert r["error"].startswith("the worker died each of 2 times it scanned this dump (Dask: ")


def test_without_the_extra_dask_and_parquet_say_so_and_the_rest_works(tmp_path):
    # the extra's modules made unimportable, as on a core install
    prelude = ("import sys; [sys.modules.__setitem__(m, None) for m in ('dask', 'distributed', 'pyarrow')]; "
               "from kcoretool.cli import main; main(sys.argv[1:])")

    def run(*args):
        return subprocess.run([sys.executable, "-c", prelude, *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=300)

    out = tmp_path / "f.jsonl"
    r = run("fleet", "scan", DEMO, "-o", str(out), "--dask", "local:2")
    assert r.returncode == 1 and r.stderr == ("kcoretool: --dask needs the fleet extra (Dask distributed, pyarrow): "
                                              "pip install 'kcoretool[fleet]'\n")
    r = run("fleet", "scan", DEMO, "-o", str(out), "-q")
    assert r.returncode == 0 and len(rows_of(out)) == 1, r.stderr
    r = run("fleet", "report", str(out), "-o", str(tmp_path / "f.parquet"))
    assert r.returncode == 1 and r.stderr == ("kcoretool: parquet output needs the fleet extra (Dask distributed, "
                                              "pyarrow): pip install 'kcoretool[fleet]'\n")
    assert not (tmp_path / "f.parquet").exists()
    r = run("-c", DEMO, "vmalloc", "stats", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["areas"] == 125


def test_parquet_has_one_line_per_dump_and_metric(fleet, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="the fleet extra (tests/run.sh installs it)")
    out = tmp_path / "fleet.jsonl"
    r = kcoretool("fleet", "scan", fleet["normal"][0], *fleet["leaking"], fleet["damaged"][1], "-o", str(out))
    assert r.returncode == 0, r.stderr
    r = kcoretool("fleet", "report", str(out), "-o", str(tmp_path / "fleet.parquet"), "--json")
    assert r.returncode == 0, r.stderr
    t = pq.read_table(tmp_path / "fleet.parquet").to_pylist()
    hit = sorted((os.path.basename(x["path"]), x["pages"]) for x in t
                 if x["metric"] == "caller" and x["name"] == LEAKING_CALLER)
    assert hit == [("boot-0.kdump", 1026), ("leak-x12.kdump", 12312), ("leak-x6.kdump", 6156)]
    bad = [x for x in t if x["status"] != "ok"]
    assert len(bad) == 1 and bad[0]["metric"] == "dump" and "block size -1" in bad[0]["error"]
    tasks = {os.path.basename(x["path"]): x["count"] for x in t if x["metric"] == "summary" and x["name"] == "tasks"}
    assert tasks == {"boot-0.kdump": 59, "leak-x6.kdump": 59, "leak-x12.kdump": 59}


@pytest.mark.campaign
def test_hostile_fleet_file_campaign():
    """benchmarks/fleet_campaign.py: mutated fleet files and non-files given
    to `fleet scan` (resuming) and `fleet report`, each in a forked child."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fleet_campaign.py"), "--cases", "100", "--seed",
                        "26", "--timeout", "60"], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    head = r.stdout.splitlines()
    assert head[0].startswith("fleet file campaign: seed 26, 100 cases in ")
    for key in ("tracebacks", "signal deaths", "timeouts", "wrong exit", "not one line", "file changed",
                "lines lost", "not rows", "dump missing", "row twice"):
        assert f"{key:<16} 0" in head


def test_debuginfo_dir_finds_a_vmlinux_per_release(tmp_path):
    release = "6.12.117+deb12-amd64"
    d = tmp_path / "debug"
    (d / "other-release").mkdir(parents=True)
    (d / "vmlinux-5.10.0-1-amd64").write_text("not this one\n")
    out = tmp_path / "f.jsonl"
    # none for the dump's release: its BTF
    r = kcoretool("fleet", "scan", DEMO, "-o", str(out), "--debuginfo-dir", str(d), "-q")
    assert r.returncode == 0, r.stderr
    row = rows_of(out)[0]
    assert (row["status"], row["debuginfo"], row["vmlinux"]) == ("ok", "btf", None)
    # one for it (here not a real one: the row says which file it tried)
    (d / release).mkdir()
    (d / release / "vmlinux").write_text("junk\n")
    out2 = tmp_path / "f2.jsonl"
    r = kcoretool("fleet", "scan", DEMO, "-o", str(out2), "--debuginfo-dir", str(d))
    assert r.returncode == 0, r.stderr
    assert (f"kcoretool: error: {os.path.abspath(DEMO)}: --vmlinux {d}/{release}/vmlinux: not an ELF file; "
            f"give the vmlinux with debug info for Linux {release}\n") in r.stderr
    row = rows_of(out2)[0]
    # the row in the library's words, the progress line in the CLI's
    assert row["status"] == "error" and row["error"] == (
        f"vmlinux='{d}/{release}/vmlinux': not an ELF file; give the vmlinux with debug info for Linux {release}")


def test_the_report_lists_the_dumps_whose_exec_audit_flagged(tmp_path):
    """A flagged dump is counted for its release and listed with its
    reasons, in JSON, in the table and in the parquet lines; rows written
    before the audit existed (no exec_audit) count as not flagged."""
    from kcoretool.fleet.report import fleet_report, long_rows

    base = {"schema": "kcoretool-fleet/1", "size": 1, "mtime_ns": 1, "status": "ok", "release": "r1",
            "vmalloc": {"by_kind": {}, "callers": {}}, "exec": {}, "tasks": {"count": 1, "max_rss_pages": 1}}
    rows = [dict(base, path="/d/clean", exec_audit={"flags": 0, "reasons": {}}),
            dict(base, path="/d/old"),
            dict(base, path="/d/rootkit", exec_audit={"flags": 3, "reasons": {"hidden-module": 1, "wx": 2}})]
    rep = fleet_report(rows)
    assert rep["releases"][0]["audit_flagged"] == 1
    assert rep["audit_flagged"] == [{"path": "/d/rootkit", "release": "r1", "flags": 3,
                                     "reasons": {"hidden-module": 1, "wx": 2}}]
    lines = [x for x in long_rows(rows) if x[11] == "audit_reason"]
    assert [(x[0], x[12], x[13]) for x in lines] == [("/d/rootkit", "hidden-module", 1), ("/d/rootkit", "wx", 2)]
    out = tmp_path / "f.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = kcoretool("fleet", "report", str(out))
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.endswith("/d/rootkit"))
    assert line.split() == ["r1", "3", "hidden-module", "1,", "wx", "2", "/d/rootkit"], r.stdout
