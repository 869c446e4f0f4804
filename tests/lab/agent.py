"""The in-guest agent (runs as pid 1 in the chroot, with the host's Python).

Line of communication: files on the writable 9p share (mounted cache=none).
The host atomically renames ``<chan>/req/<n>.json`` into place; the agent
executes it and atomically renames ``<chan>/resp/<n>.json`` back.  Requests
are handled one at a time, in order.  Ops:

- ``run``: argv, timeout, env, cwd -> returncode, stdout, stderr, timed_out;
  ``python -m kcoretool`` and ``python -m tests.lab.in_guest.*`` are forked
  from a preloaded interpreter (tests/lab/in_guest/zygote.py: ~7 s less per
  run under TCG), started on the first such run
- ``read``/``write``: a file, in process (no fork: forks allocate vmalloc stacks)
- ``capture``: everything a snapshot needs, read in process, with the
  volatile part (areas.json + /proc/vmallocinfo) read last and back to back
- ``ping``

Standard library only: it must start with nothing but the host's Python.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback

POLL_S = 0.02
MAX_OUTPUT = 64 << 20
KCT_DEBUGFS = "/sys/kernel/debug/kcoretool_test"


def _console(msg: str) -> None:
    try:
        with open("/dev/console", "w") as f:
            f.write(f"kct-agent: {msg}\n")
    except OSError:
        pass


def _read_text(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def _write_atomic(chan: str, name: str, obj: dict) -> None:
    tmp = os.path.join(chan, "tmp", f"a-{name}")
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, os.path.join(chan, "resp", name))


ZYGOTE_SOCKET = "/tmp/kct-zygote.sock"
_zygote: dict = {}  # python -> Popen, or None when it could not start


def _zygote_for(argv: list, env: dict, cwd: str) -> bool:
    """Whether a preloaded interpreter can run argv (starting it if needed)."""
    if len(argv) < 3 or argv[1] != "-m" or env.get("KCT_NO_ZYGOTE"):
        return False
    if not (argv[2] == "kcoretool" or argv[2].startswith("tests.lab.in_guest.")) or argv[2].endswith(".zygote"):
        return False
    if argv[0] in _zygote:
        return _zygote[argv[0]] is not None
    if _zygote:
        return False  # one zygote, for the first python asked for
    try:
        os.unlink(ZYGOTE_SOCKET)
    except OSError:
        pass
    with open("/tmp/kct-zygote.log", "wb") as log:
        p = subprocess.Popen([argv[0], "-m", "tests.lab.in_guest.zygote", ZYGOTE_SOCKET], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log, cwd=cwd, env=env, start_new_session=True)
    deadline = time.time() + 300
    while not os.path.exists(ZYGOTE_SOCKET) and p.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    ok = os.path.exists(ZYGOTE_SOCKET)
    _zygote[argv[0]] = p if ok else None
    _console(f"zygote {'ready' if ok else 'failed, see /tmp/kct-zygote.log'}")
    return ok


class _ZygoteGone(Exception):
    pass


def _read_line(conn: socket.socket) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        more = conn.recv(64)
        if not more:
            raise EOFError("zygote closed the connection")
        buf += more
    return buf.decode().strip()


def _zygote_run(argv: list, env: dict, cwd: str, timeout: float) -> dict:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            conn.connect(ZYGOTE_SOCKET)
        except OSError:
            conn.close()
            raise _ZygoteGone from None
        body = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()
        socket.send_fds(conn, [struct.pack("<I", len(body))], [devnull, out_w, err_w])
        conn.sendall(body)
        pid = int(_read_line(conn))
    finally:
        for fd in (out_w, err_w, devnull):
            os.close(fd)
    chunks: dict = {out_r: [], err_r: []}
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    deadline = time.time() + timeout
    timed_out = False
    while sel.get_map():
        left = deadline - time.time()
        if left <= 0 and not timed_out:
            timed_out = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            deadline = time.time() + 10
            continue
        if left <= 0:
            break
        for key, _ in sel.select(left):
            data = os.read(key.fd, 1 << 16)
            if data:
                chunks[key.fd].append(data)
            else:
                sel.unregister(key.fd)
    sel.close()
    for fd in chunks:
        os.close(fd)
    status = int(_read_line(conn))
    conn.close()
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    out, err = b"".join(chunks[out_r]), b"".join(chunks[err_r])
    return {
        "returncode": rc if not timed_out else -signal.SIGKILL,
        "stdout": out[:MAX_OUTPUT].decode("utf-8", "replace"),
        "stderr": err[:MAX_OUTPUT].decode("utf-8", "replace")
        + (f"\nagent: timed out after {timeout}s, killed\n" if timed_out else ""),
        "timed_out": timed_out,
    }


def op_run(req: dict) -> dict:
    env = dict(os.environ)
    env.update(req.get("env") or {})
    timeout = float(req.get("timeout", 60))
    cwd = req.get("cwd") or "/"
    if _zygote_for(req["argv"], env, cwd):
        try:
            return _zygote_run(req["argv"], env, cwd, timeout)
        except _ZygoteGone:
            _zygote[req["argv"][0]] = None
            _console("zygote gone, running without it")
    try:
        p = subprocess.Popen(req["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=cwd, env=env,
                             start_new_session=True)
    except OSError as exc:
        return {"returncode": 127, "stdout": "", "stderr": f"agent: cannot run: {exc}\n",
                "timed_out": False}
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
    return {
        "returncode": p.returncode if not timed_out else -signal.SIGKILL,
        "stdout": out[:MAX_OUTPUT].decode("utf-8", "replace"),
        "stderr": err[:MAX_OUTPUT].decode("utf-8", "replace")
        + (f"\nagent: timed out after {timeout}s, killed\n" if timed_out else ""),
        "timed_out": timed_out,
    }


def _kallsyms(text: str, names: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in names and parts[2] not in found:
            found[parts[2]] = int(parts[0], 16)
    return found


def _kcore_read_u64(addrs: dict[str, int]) -> dict[str, int]:
    """Read 8-byte kernel variables through /proc/kcore's PT_LOADs (text segment)."""
    out: dict[str, int] = {}
    try:
        fd = os.open("/proc/kcore", os.O_RDONLY)
    except OSError:
        return out
    try:
        eh = os.pread(fd, 64, 0)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        ph = os.pread(fd, phentsize * phnum, phoff)
        segs = []
        for i in range(phnum):
            p_type, _fl, off, vaddr, _pa, filesz, _ms, _al = struct.unpack_from("<IIQQQQQQ", ph, i * phentsize)
            if p_type == 1:
                segs.append((vaddr, filesz, off))
        for name, addr in addrs.items():
            for vaddr, size, off in segs:
                if vaddr <= addr < vaddr + size - 8:
                    out[name], = struct.unpack("<Q", os.pread(fd, 8, off + addr - vaddr))
                    break
    finally:
        os.close(fd)
    return out


def op_capture(req: dict) -> dict:
    res: dict = {"uname": list(os.uname())}
    # Static or slow things first ...
    kallsyms = _read_text("/proc/kallsyms")
    syms = _kallsyms(kallsyms, {"_text", "_stext", "vmalloc_base", "page_offset_base",
                                "vmemmap_base", "_end"})
    res["symbols"] = syms
    res["variables"] = _kcore_read_u64({k: v for k, v in syms.items() if k.endswith("_base")})
    res["iomem"] = _read_text("/proc/iomem")
    res["cpus_online"] = _read_text("/sys/devices/system/cpu/online").strip()
    res["cmdline"] = _read_text("/proc/cmdline").strip()
    if req.get("free_lazy") and os.path.exists(f"{KCT_DEBUGFS}/control"):
        with open(f"{KCT_DEBUGFS}/control", "w") as f:
            f.write("free_lazy\n")
    # ... then the moment: module JSON and vmallocinfo back to back, no forks.
    res["module_json"] = (_read_text(f"{KCT_DEBUGFS}/areas.json")
                          if os.path.exists(f"{KCT_DEBUGFS}/areas.json") else None)
    res["vmallocinfo"] = _read_text("/proc/vmallocinfo")
    res["proc_maps"] = _proc_maps()
    res["captured_at"] = time.time()
    return res


def _proc_maps() -> dict:
    """{pid: maps text} of every process, read in process (issue 13's
    task vmas --format maps is compared with it); kernel threads' are empty."""
    out = {}
    for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
        if name.isdigit():
            try:
                out[name] = _read_text(f"/proc/{name}/maps")
            except OSError:
                pass  # exited meanwhile
    return out


#: /proc/self/maps as it was while the agent idled before the current
#: request: after a capture, the agent's maps at the dump moment (the capture
#: itself holds big strings the idle agent has freed again).
IDLE_MAPS = ""


def handle(req: dict) -> dict:
    op = req.get("op")
    if op == "idle_maps":
        return {"pid": os.getpid(), "maps": IDLE_MAPS}
    if op == "run":
        return op_run(req)
    if op == "read":
        return {"data": _read_text(req["path"])}
    if op == "write":
        with open(req["path"], "w") as f:
            f.write(req["data"])
        return {}
    if op == "capture":
        return op_capture(req)
    if op == "ping":
        return {"pong": True, "time": time.time()}
    raise ValueError(f"unknown op {op!r}")


def _reap() -> None:
    # As pid 1 we inherit orphans; collect them between requests only, so we
    # never race subprocess's own waitpid().
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(chan: str) -> None:
    global IDLE_MAPS
    for sub in ("req", "resp", "tmp"):
        os.makedirs(os.path.join(chan, sub), exist_ok=True)
    _write_atomic(chan, "ready.json", {"uname": list(os.uname()), "pid": os.getpid(),
                                       "python": sys.executable, "time": time.time()})
    _console("ready")
    reqdir = os.path.join(chan, "req")
    while True:
        try:
            names = sorted(n for n in os.listdir(reqdir) if n.endswith(".json"))
        except OSError as exc:
            _console(f"listdir failed: {exc}")
            time.sleep(1)
            continue
        if not names:
            time.sleep(POLL_S)
            continue
        IDLE_MAPS = _read_text("/proc/self/maps")
        for name in names:
            path = os.path.join(reqdir, name)
            t0 = time.time()
            try:
                with open(path) as f:
                    req = json.load(f)
                os.unlink(path)
                resp = {"ok": True, **handle(req)}
            except Exception as exc:  # report, never die: we are pid 1
                resp = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc()}
                try:
                    os.unlink(path)
                except OSError:
                    pass
            resp["agent_seconds"] = time.time() - t0
            _write_atomic(chan, name, resp)
            _reap()


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        _console("agent crashed:\n" + traceback.format_exc())
        raise
