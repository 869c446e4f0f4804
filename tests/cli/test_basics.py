import errno
import subprocess
import sys

import pytest

from kcoretool.cli.output import hexdump_lines, parse_address, parse_size
from kcoretool.errors import AccessError, KcoreToolError
from kcoretool.source import open as open_mod


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kcoretool", *args], capture_output=True, text=True, env=env)


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout == "kcoretool, version 0.1.0\n"


def test_usage_error_exit_2():
    r = run("info", "--bogus")
    assert r.returncode == 2
    assert "No such option" in r.stderr and "--bogus" in r.stderr


def test_missing_file():
    r = run("-c", "/nonexistent/vmcore", "info")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "kcoretool: /nonexistent/vmcore: no such file; give the path of a vmcore or /proc/kcore\n"


def test_directory(tmp_path):
    r = run("-c", str(tmp_path), "info")
    assert r.returncode == 1
    assert r.stderr == f"kcoretool: {tmp_path}: is a directory; give the path of a vmcore or /proc/kcore\n"


def test_env_var_selects_core(tmp_path):
    import os

    env = dict(os.environ, KCORETOOL_CORE=str(tmp_path / "nope"))
    r = run("info", env=env)
    assert r.stderr == f"kcoretool: {tmp_path / 'nope'}: no such file; give the path of a vmcore or /proc/kcore\n"


@pytest.mark.skipif(__import__("os").path.exists("/proc/kcore"), reason="this machine has /proc/kcore")
def test_no_proc_kcore():
    r = run("info")
    assert r.returncode == 1
    assert r.stderr == (
        "kcoretool: /proc/kcore does not exist: this kernel was built without CONFIG_PROC_KCORE; "
        "analyse a vmcore instead with -c PATH\n"
    )


def test_debug_shows_traceback():
    r = run("--debug", "-c", "/nonexistent/vmcore", "info")
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "AccessError" in r.stderr


def _perm():
    return PermissionError(errno.EACCES, "Permission denied")


def test_kcore_permission_denied_not_root(monkeypatch, tmp_path):
    monkeypatch.setattr(open_mod, "LOCKDOWN_PATH", str(tmp_path / "absent"))
    monkeypatch.setattr(open_mod.os, "geteuid", lambda: 1000)
    err = open_mod._open_error("/proc/kcore", _perm())
    assert isinstance(err, AccessError)
    assert str(err) == "cannot open /proc/kcore: permission denied; run as root (needs CAP_SYS_RAWIO)"


def test_kcore_permission_denied_root(monkeypatch, tmp_path):
    monkeypatch.setattr(open_mod, "LOCKDOWN_PATH", str(tmp_path / "absent"))
    monkeypatch.setattr(open_mod.os, "geteuid", lambda: 0)
    err = open_mod._open_error("/proc/kcore", PermissionError(errno.EPERM, "Operation not permitted"))
    assert str(err) == (
        "cannot open /proc/kcore: permission denied although running as root; "
        "the process lacks CAP_SYS_RAWIO (a container?)"
    )


def test_kcore_lockdown(monkeypatch, tmp_path):
    lockdown = tmp_path / "lockdown"
    lockdown.write_text("none integrity [confidentiality]\n")
    monkeypatch.setattr(open_mod, "LOCKDOWN_PATH", str(lockdown))
    err = open_mod._open_error("/proc/kcore", PermissionError(errno.EPERM, "Operation not permitted"))
    assert str(err) == (
        "cannot open /proc/kcore: the kernel is locked down (lockdown=confidentiality forbids "
        "/proc/kcore); analyse a vmcore taken with kdump instead"
    )


def test_integrity_lockdown_is_not_blamed(monkeypatch, tmp_path):
    # LOCKDOWN_KCORE is a confidentiality-level reason: integrity mode allows kcore.
    lockdown = tmp_path / "lockdown"
    lockdown.write_text("none [integrity] confidentiality\n")
    monkeypatch.setattr(open_mod, "LOCKDOWN_PATH", str(lockdown))
    monkeypatch.setattr(open_mod.os, "geteuid", lambda: 1000)
    assert "run as root" in str(open_mod._open_error("/proc/kcore", _perm()))


def test_other_file_permission_denied():
    err = open_mod._open_error("/srv/vmcore", _perm())
    assert str(err) == "/srv/vmcore: permission denied; check the file's permissions"


@pytest.mark.parametrize(
    "text,value",
    [("0x1000", 0x1000), ("4096", 4096), ("ffffffff81000000", 0xFFFFFFFF81000000), ("0XFF", 255)],
)
def test_parse_address_numbers(text, value):
    assert parse_address(text) == value


def test_parse_address_symbols():
    syms = {"_stext": 0xFFFFFFFF9B000000}.get
    assert parse_address("_stext", syms) == 0xFFFFFFFF9B000000
    assert parse_address("_stext+0x10", syms) == 0xFFFFFFFF9B000010
    assert parse_address("_stext + 16", syms) == 0xFFFFFFFF9B000010
    with pytest.raises(KcoreToolError) as e:
        parse_address("nosuch+4", syms)
    assert str(e.value) == (
        "unknown symbol 'nosuch': this core's VMCOREINFO does not list it; give a numeric address "
        "(`kcoretool vmcoreinfo` shows the SYMBOL() entries)"
    )
    with pytest.raises(KcoreToolError, match="is not an address"):
        parse_address("12zz", syms)


def test_parse_size():
    assert parse_size("4K") == 4096
    assert parse_size("0x20") == 32
    assert parse_size("2M") == 2 << 20
    assert parse_size("10") == 10


def test_hexdump_matches_xxd_layout():
    lines = list(hexdump_lines(0xFFFFFFFF9B000000, bytes(range(0x41, 0x41 + 20))))
    assert lines == [
        "ffffffff9b000000: 4142 4344 4546 4748 494a 4b4c 4d4e 4f50  ABCDEFGHIJKLMNOP",
        "ffffffff9b000010: 5152 5354                                QRST",
    ]


def test_debug_info_errors_are_one_line():
    core = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "fixtures" / "vmcore-6.1.core")
    r = run("-c", core, "--vmlinux", "/nonexistent/vmlinux", "vmalloc", "list")
    assert (r.returncode, r.stderr) == (
        1, "kcoretool: --vmlinux /nonexistent/vmlinux: no such file; give the kernel's vmlinux with debug info\n")
    r = run("-c", core, "--vmlinux", sys.executable, "vmalloc", "stats")
    assert r.returncode == 1
    assert r.stderr == (
        f"kcoretool: {sys.executable}: does not match Linux 6.1.0-56-amd64 or has no DWARF; install "
        "linux-image-6.1.0-56-amd64-dbg (Debian/Ubuntu) or kernel-debuginfo-6.1.0-56-amd64 (Fedora/RHEL), "
        "or pass --vmlinux\n")


def test_elf_commands_do_not_import_drgn():
    """info, segments, notes and vmcoreinfo start fast: drgn is never imported."""
    import subprocess
    import sys

    core = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "fixtures" / "kcore-6.1.core")
    code = ("import sys\nfrom kcoretool.cli import cli\n"
            "for c in ('info', 'segments', 'notes', 'vmcoreinfo'):\n"
            "    cli.main(['-c', sys.argv[1], c], standalone_mode=False)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'drgn'))")
    out = subprocess.run([sys.executable, "-c", code, core], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"
