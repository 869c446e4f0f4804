"""A booted QEMU guest: process, QMP and the file-based agent channel."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import weakref
from typing import Any, Mapping, Optional, Sequence

from .config import DEFAULT_MEM_MB, REPO_ROOT, LabError, die_with_parent, log

BOOT_TIMEOUT_S = float(os.environ.get("KCORETOOL_LAB_BOOT_TIMEOUT", "300"))
# Extra wall time the host allows on top of a request's own timeout: the
# agent polls every 20 ms, but TCG guests stall now and then.
AGENT_SLACK_S = 30.0


class GuestTimeout(LabError):
    pass


def _tmp_binds(paths: Sequence[pathlib.Path]) -> list[str]:
    """Top-level /tmp entries holding paths the guest must see (its own /tmp is
    a tmpfs): '/labcache' for /tmp/labcache/... ."""
    out: list[str] = []
    for p in paths:
        for q in {pathlib.Path(os.path.abspath(p)), pathlib.Path(os.path.realpath(p))}:
            parts = q.parts
            if len(parts) > 2 and parts[1] == "tmp" and f"/{parts[2]}" not in out:
                out.append(f"/{parts[2]}")
    return out


class QMP:
    """Minimal QMP client over a unix socket, every call bounded in time."""

    def __init__(self, path: pathlib.Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""
        self._recv()  # greeting
        self.execute("qmp_capabilities")

    def _recv(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise LabError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd: str, timeout: float = 30.0, **args: Any) -> Any:
        msg: dict = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.sock.settimeout(timeout)
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise GuestTimeout(f"QMP {cmd} timed out after {timeout:.0f}s")
            try:
                r = self._recv()
            except socket.timeout as exc:
                raise GuestTimeout(f"QMP {cmd} timed out after {timeout:.0f}s") from exc
            if "event" in r:
                continue
            if "error" in r:
                raise LabError(f"QMP {cmd}: {r['error'].get('desc', r['error'])}")
            return r.get("return")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# Guests still running at interpreter exit are stopped (belt and braces on
# top of fixture teardown and PR_SET_PDEATHSIG).
_live_guests: weakref.WeakSet[Guest] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for g in list(_live_guests):
        g.close()


class Guest:
    """One QEMU/TCG guest running a Debian kernel and the lab agent.

    ``run(argv, timeout)`` executes argv inside the guest (chroot into the
    host root, so host paths and the host's Python work) and returns
    ``(returncode, stdout, stderr)``.
    """

    def __init__(self, *, kernel: str, release: str, vmlinuz: pathlib.Path,
                 initrd: pathlib.Path, workdir: pathlib.Path, mem_mb: int = DEFAULT_MEM_MB,
                 smp: int = 2, extra_append: str = "") -> None:
        self.kernel = kernel
        self.release = release
        self.workdir = workdir
        self.share = workdir / "share"
        self.chan = self.share / "agent"
        self.console_log = workdir / "console.log"
        self.qmp_path = workdir / "qmp.sock"
        self.vmlinuz, self.initrd = vmlinuz, initrd
        self.mem_mb, self.smp, self.extra_append = mem_mb, smp, extra_append
        self.proc: Optional[subprocess.Popen] = None
        self.qmp: Optional[QMP] = None
        self._seq = itertools.count(1)
        self.boot_seconds: Optional[float] = None

    # ---- lifecycle ----

    def start(self) -> Guest:
        self.share.mkdir(parents=True, exist_ok=True)
        for sub in ("req", "resp", "tmp"):
            (self.chan / sub).mkdir(parents=True, exist_ok=True)
        append = " ".join([
            "console=ttyS0", "panic=-1", "loglevel=4", "mitigations=off", "rdinit=/init",
            f"kct_share={self.share}", f"kct_repo={REPO_ROOT}",
            f"kct_python={sys.executable}",
            f"kct_tmpbind={','.join(_tmp_binds([self.share, REPO_ROOT, pathlib.Path(sys.prefix), pathlib.Path(sys.executable), self.vmlinuz, self.initrd]))}",
            self.extra_append,
        ]).strip()
        argv = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
            "-smp", str(self.smp), "-m", f"{self.mem_mb}M", "-nodefaults", "-display", "none",
            "-vga", "none", "-no-reboot", "-net", "none",
            "-serial", f"file:{self.console_log}", "-monitor", "none",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-device", "vmcoreinfo",
            "-kernel", str(self.vmlinuz), "-initrd", str(self.initrd), "-append", append,
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={self.share},mount_tag=labshare,security_model=none,multidevs=remap",
        ]
        (self.workdir / "qemu.argv").write_text(json.dumps(argv, indent=1))
        log(f"booting {self.release} ({self.mem_mb} MiB, TCG)")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(self.workdir / "qemu.out", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent)
        _live_guests.add(self)
        try:
            self._wait_ready(t0 + BOOT_TIMEOUT_S)
            self.qmp = QMP(self.qmp_path)
        except BaseException:
            self.close()
            raise
        self.boot_seconds = time.monotonic() - t0
        log(f"{self.release} up in {self.boot_seconds:.1f}s")
        return self

    def _wait_ready(self, deadline: float) -> None:
        ready = self.chan / "resp" / "ready.json"
        agent_said_ready: Optional[float] = None
        while time.monotonic() < deadline:
            if ready.exists():
                info = json.loads(ready.read_text())
                ready.unlink()
                if info["uname"][2] != self.release:
                    raise LabError(f"guest runs {info['uname'][2]}, expected {self.release}")
                return
            self._check_alive("during boot")
            if agent_said_ready is None and "kct-agent: ready" in self._console_text():
                agent_said_ready = time.monotonic()
            if agent_said_ready is not None and time.monotonic() - agent_said_ready > 30:
                raise LabError(f"{self.release}: the agent is up but its ready file never reached "
                               f"{self.chan} (share not mounted where the host looks?)")
            time.sleep(0.1)
        raise GuestTimeout(f"{self.release}: agent not ready after {BOOT_TIMEOUT_S:.0f}s; "
                           f"console: {self.console_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self, when: str) -> None:
        if not self.alive():
            rc = self.proc.returncode if self.proc else None
            raise LabError(f"{self.release}: QEMU exited ({rc}) {when}; console: {self.console_tail()}")

    def _console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_tail(self, lines: int = 6) -> str:
        text = self._console_text()
        if not text:
            return "(empty console log)"
        return " | ".join(l.strip() for l in text.strip().splitlines()[-lines:])

    def close(self) -> None:
        """Stop QEMU (QMP quit, then SIGTERM, then SIGKILL), bounded in time."""
        if self.qmp is not None:
            try:
                self.qmp.execute("quit", timeout=5)
            except (LabError, OSError):
                pass
            self.qmp.close()
            self.qmp = None
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.proc = None

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- agent ----

    def request(self, op: str, timeout: float, **fields: Any) -> dict:
        """Send one request to the agent; raise GuestTimeout if no answer in time."""
        self._check_alive(f"before {op}")
        name = f"{next(self._seq):08d}.json"
        tmp = self.chan / "tmp" / f"h-{name}"
        tmp.write_text(json.dumps({"op": op, "timeout": timeout, **fields}))
        os.rename(tmp, self.chan / "req" / name)
        resp_path = self.chan / "resp" / name
        deadline = time.monotonic() + timeout + AGENT_SLACK_S
        delay = 0.005
        while True:
            if resp_path.exists():
                resp = json.loads(resp_path.read_text())
                resp_path.unlink()
                if not resp.get("ok"):
                    raise LabError(f"agent {op} failed: {resp.get('error')}")
                return resp
            if time.monotonic() > deadline:
                # Withdraw the request if the agent never picked it up.
                (self.chan / "req" / name).unlink(missing_ok=True)
                raise GuestTimeout(f"{self.release}: no answer to {op} within {timeout + AGENT_SLACK_S:.0f}s")
            self._check_alive(f"waiting for {op}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def run(self, argv: Sequence[str], timeout: float = 120,
            env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None) -> tuple[int, str, str]:
        """Run argv in the guest; (returncode, stdout, stderr).  A command that
        exceeds timeout is killed in the guest and returns -9."""
        r = self.request("run", timeout, argv=[str(a) for a in argv], env=dict(env or {}),
                         cwd=cwd or str(REPO_ROOT))
        return r["returncode"], r["stdout"], r["stderr"]

    def sh(self, script: str, timeout: float = 120) -> tuple[int, str, str]:
        return self.run(["/bin/sh", "-c", script], timeout=timeout)

    def read(self, path: str, timeout: float = 60) -> str:
        return self.request("read", timeout, path=path)["data"]

    def write(self, path: str, data: str, timeout: float = 60) -> None:
        self.request("write", timeout, path=path, data=data)

    def kcoretool(self, *args: str, timeout: float = 300) -> tuple[int, str, str]:
        """``python -m kcoretool ARGS`` in the guest (default core: /proc/kcore)."""
        return self.run([self.python, "-m", "kcoretool", *map(str, args)], timeout=timeout)

    @property
    def python(self) -> str:
        return sys.executable

    def panic(self, timeout: float = 120) -> str:
        """Crash the kernel (``echo c > /proc/sysrq-trigger``: ``panic("sysrq
        triggered crash")``) and wait for its ``Kernel panic - not syncing``
        line on the console; the guest then spins in panic() (kernel.panic=0)
        for dump_elf().  The agent is gone: no request works after this."""
        self.write("/proc/sys/kernel/panic", "0")  # the command line's panic=-1 would end QEMU
        try:
            self.request("write", 5, path="/proc/sysrq-trigger", data="c")
        except LabError:
            pass  # no answer: the kernel stopped before the agent could reply
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive("after the panic")
            for line in self._console_text().splitlines():
                if "Kernel panic - not syncing" in line:
                    return line.strip()
            time.sleep(0.2)
        raise LabError(f"{self.release}: no 'Kernel panic' on the console {timeout:.0f}s after sysrq-c; "
                       f"console: {self.console_tail()}")

    # ---- memory dump ----

    def dump_elf(self, path: pathlib.Path, timeout: float = 300) -> None:
        """QMP dump-guest-memory (paging=false): an ELF vmcore of guest RAM."""
        assert self.qmp is not None
        path.unlink(missing_ok=True)
        self.qmp.execute("dump-guest-memory", timeout=timeout, paging=False,
                         protocol=f"file:{path}")
        if not path.exists() or path.stat().st_size == 0:
            raise LabError(f"dump-guest-memory produced no file at {path}")
