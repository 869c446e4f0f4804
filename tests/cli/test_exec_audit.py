"""``exec audit`` on the demo dump (a real Debian 6.12 guest, BTF from the
dump): every executable byte owned, nothing flagged, exit 0; the PTP
classifier's classic BPF owns the first pack's 25 chunks in ``exec packs``
too.  The flags themselves are checked on the lab's real kernels
(tests/lab/test_exec_audit.py plants what they are about)."""

import json
import pathlib
import subprocess
import sys

CORE = pathlib.Path(__file__).resolve().parent.parent.parent / "fixtures" / "demo" / "demo-6.12.kdump"


def _kct(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kcoretool", "-c", str(CORE), *args], capture_output=True,
                          text=True, timeout=300)


def test_demo_is_clean() -> None:
    cp = _kct("--json", "exec", "audit", "--census")
    assert cp.returncode == 0, cp.stderr
    a = json.loads(cp.stdout)
    assert a["flags"] == [] and a["unowned_bytes"] == 0
    assert a["totals"] == {"kernel-text": 16 << 20, "free-pack": 2095552, "module-text": 184320,
                           "realmode-trampoline": 8192, "bpf-classic": 1600}
    assert a["executable_bytes"] == sum(r["end"] - r["start"] for r in a["runs"]) == sum(a["totals"].values())
    classic = [c for c in a["census"] if c["kind"] == "bpf-classic"]
    assert len(classic) == 1 and classic[0]["size"] == 1600 and classic[0]["owner"] == "ptp_classifier (classic BPF)"
    # Kernel text: 2 MiB leaves, read-only.
    text = [c for c in a["census"] if c["kind"] == "kernel-text"]
    assert all(not c["writable"] for c in a["census"]) and {c["page_size"] for c in text} == {2 << 20}
    cp = _kct("exec", "audit", "--census")
    assert cp.returncode == 0 and cp.stdout.endswith("18.2M executable in 9 run(s), 0 unowned; 0 flag(s)\n")
    assert "ptp_classifier (classic BPF)" in cp.stdout


def test_packs_name_the_classic_filter() -> None:
    cp = _kct("--json", "exec", "packs")
    assert cp.returncode == 0, cp.stderr
    (pack,) = json.loads(cp.stdout)
    assert pack["unattributed"] == [] and pack["used_chunks"] == 25
    assert [(i["start"] - pack["start"], i["end"] - i["start"], i["name"]) for i in pack["images"]] == \
        [(0, 1600, "ptp_classifier (classic BPF)")]
