"""Inside a lab guest: load BPF socket filters and keep them loaded, and set
two kprobes (issue 12).

``python -m tests.lab.in_guest.bpf OUT.json`` loads a few
``BPF_PROG_TYPE_SOCKET_FILTER`` programs of different instruction counts
with the bpf() syscall (ctypes; no libbpf), reads back each one's id, tag
and JIT'd bytes (``BPF_OBJ_GET_INFO_BY_FD``), captures the truth the kernel
shows about executable memory -- the ``[bpf]`` lines of /proc/kallsyms,
/proc/modules and every /sys/module/*/sections/* -- writes it all to
OUT.json (atomically) and then sleeps, holding the program fds, until it
is killed (with the guest).

The kprobes (tracefs ``kprobe_events``) give the kernel's other text
allocators something to hold: one at ``vfs_read``'s entry is an ftrace-based
kprobe (an ftrace trampoline), one inside ``vfs_read`` copies an
instruction into a kprobe insn slot page (and, optimised, an optinsn page).
Their truth is the ``[__builtin__ftrace]`` and ``[__builtin__kprobes]``
lines of /proc/kallsyms.

Standard library only: it runs with the host's Python in the guest.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import signal
import struct
import sys
from typing import Any, Dict, List

SYS_BPF = 321  # x86_64
BPF_PROG_LOAD, BPF_OBJ_GET_INFO_BY_FD, BPF_RAW_TRACEPOINT_OPEN = 5, 15, 17
BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_TRACING = 1, 26
BPF_TRACE_FENTRY = 24
#: the kernel function the fentry program attaches to (a BPF trampoline)
FENTRY_TARGET = "vfs_write"
#: (name, instruction count); the last two have the same instructions,
#: hence the same tag, under two names.
PROGRAMS = (("kct_i2", 2), ("kct_i64", 64), ("kct_i700", 700), ("kct_i3000", 3000), ("kct_i64_dup", 64))

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    r = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), attr, ctypes.c_ulong(len(attr)))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return int(r)


def insns(n: int) -> bytes:
    """``r0 = i`` (n - 1 times, so the JIT emits code for each) and ``exit``."""
    out = b"".join(struct.pack("<BBhi", 0xB7, 0, 0, i + 1) for i in range(n - 1))  # BPF_ALU64|BPF_MOV|BPF_K
    return out + struct.pack("<BBhi", 0x95, 0, 0, 0)  # BPF_JMP|BPF_EXIT


def load(name: str, n: int, keep: List[Any]) -> int:
    code = ctypes.create_string_buffer(insns(n))
    lic = ctypes.create_string_buffer(b"GPL")
    keep += [code, lic]

    def attempt(log: Any) -> int:
        attr = ctypes.create_string_buffer(128)
        struct.pack_into("<IIQQIIQII16s", attr, 0, BPF_PROG_TYPE_SOCKET_FILTER, n, ctypes.addressof(code),
                         ctypes.addressof(lic), 1 if log is not None else 0, len(log) if log is not None else 0,
                         ctypes.addressof(log) if log is not None else 0, 0, 0, name.encode())
        return _bpf(BPF_PROG_LOAD, attr)

    try:
        return attempt(None)  # no verifier log: a long one fails with ENOSPC
    except OSError as e:
        log = ctypes.create_string_buffer(1 << 20)
        try:
            attempt(log)
        except OSError:
            pass
        raise OSError(e.errno, f"loading {name}: {e}; verifier: {log.value.decode(errors='replace')[-300:]}") from None


def fentry(keep: List[Any]) -> Dict[str, Any]:
    """An fentry program on FENTRY_TARGET, attached: the kernel builds a BPF
    trampoline for it (ksym ``bpf_trampoline_<key>[_<selector>]``)."""
    from kcoretool.debuginfo.btf import parse_btf  # the repo is on the guest's path

    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        btf = parse_btf(f.read(), name="vmlinux")
    ids = [i for i in btf.ids_by_name(FENTRY_TARGET) if btf.kind_of(i) == 12]  # BTF_KIND_FUNC
    if not ids:
        raise OSError(0, f"no BTF FUNC {FENTRY_TARGET}")
    # r0 = 0; exit (fentry programs must return 0)
    code = ctypes.create_string_buffer(struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0))
    lic = ctypes.create_string_buffer(b"GPL")
    keep += [code, lic]
    attr = ctypes.create_string_buffer(144)
    struct.pack_into("<IIQQIIQII16s", attr, 0, BPF_PROG_TYPE_TRACING, 2, ctypes.addressof(code),
                     ctypes.addressof(lic), 0, 0, 0, 0, 0, b"kct_fentry")
    struct.pack_into("<I", attr, 68, BPF_TRACE_FENTRY)  # expected_attach_type
    struct.pack_into("<I", attr, 108, ids[0])  # attach_btf_id (in vmlinux: attach_btf_obj_fd 0)
    try:
        prog_fd = _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        log = ctypes.create_string_buffer(1 << 16)
        struct.pack_into("<IIQ", attr, 24, 1, len(log), ctypes.addressof(log))
        try:
            _bpf(BPF_PROG_LOAD, attr)
        except OSError:
            pass
        raise OSError(e.errno, f"loading kct_fentry: {e}; verifier: {log.value.decode(errors='replace')[-300:]}") from None
    link = ctypes.create_string_buffer(16)
    struct.pack_into("<QI", link, 0, 0, prog_fd)  # raw_tracepoint.name NULL: attach where it was loaded for
    link_fd = _bpf(BPF_RAW_TRACEPOINT_OPEN, link)
    return dict(info(prog_fd), fd=prog_fd, link_fd=link_fd, target=FENTRY_TARGET, btf_id=ids[0])


def info(fd: int) -> Dict[str, Any]:
    """id, tag, name, jited_prog_len and the JIT'd bytes of a program fd."""
    out: Dict[str, Any] = {}
    for _ in range(2):  # first the lengths, then the bytes
        jit = ctypes.create_string_buffer(max(1, out.get("jited_len", 0)))
        raw = ctypes.create_string_buffer(80)
        struct.pack_into("<I", raw, 16, out.get("jited_len", 0))
        struct.pack_into("<Q", raw, 24, ctypes.addressof(jit) if out else 0)
        attr = ctypes.create_string_buffer(16)
        struct.pack_into("<IIQ", attr, 0, fd, len(raw), ctypes.addressof(raw))
        _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
        ptype, pid = struct.unpack_from("<II", raw, 0)
        out.update(type=ptype, id=pid, tag=raw.raw[8:16].hex(), jited_len=struct.unpack_from("<I", raw, 16)[0],
                   name=raw.raw[64:80].split(b"\0", 1)[0].decode())
        if len(jit) == out["jited_len"]:
            out["jited"] = jit.raw.hex()
    return out


TRACEFS = "/sys/kernel/tracing"


def kprobes() -> Dict[str, Any]:
    """Arm ``kct_entry`` (vfs_read, ftrace-based) and ``kct_body`` (the first
    instruction boundary after the fentry call: an insn slot)."""
    if not os.path.exists(f"{TRACEFS}/kprobe_events"):
        os.system(f"mount -t tracefs nodev {TRACEFS}")
    events = f"{TRACEFS}/kprobe_events"

    def append(text: str) -> None:
        # os-level: Python's "a" mode seeks to the end, which tracefs refuses.
        fd = os.open(events, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    done: Dict[str, Any] = {}
    append("p:kct_entry vfs_read\n")
    done["kct_entry"] = "vfs_read"
    for off in range(5, 64):  # endbr64 (4 bytes) and the 5-byte fentry call come first
        try:
            append(f"p:kct_body vfs_read+{off}\n")
        except OSError:
            continue  # -EILSEQ: not an instruction boundary
        done["kct_body"] = f"vfs_read+{off}"
        break
    for name in done:
        with open(f"{TRACEFS}/events/kprobes/{name}/enable", "w") as f:
            f.write("1\n")
    return done


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def sections() -> Dict[str, Dict[str, int]]:
    out: Dict[str, Dict[str, int]] = {}
    for d in sorted(glob.glob("/sys/module/*/sections")):
        mod = d.split("/")[3]
        secs = {}
        for p in sorted(glob.glob(d + "/.*") + glob.glob(d + "/*")):
            try:
                secs[os.path.basename(p)] = int(_read(p).strip(), 16)
            except (OSError, ValueError):
                continue
        out[mod] = secs
    return out


def main() -> None:
    out_path = sys.argv[1]
    try:
        truth = capture()
    except Exception as e:  # the host waits for this file: say why instead
        truth = {"error": f"{type(e).__name__}: {e}"}
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(truth, f)
    os.rename(tmp, out_path)
    if "error" in truth:
        sys.exit(1)
    while True:  # hold the fds: the programs stay loaded until the guest goes
        signal.pause()


_keep: List[Any] = []


def capture() -> Dict[str, Any]:
    sysctl = "/proc/sys/net/core/bpf_jit_kallsyms"
    with open(sysctl, "w") as f:
        f.write("1\n")
    progs = []
    for name, n in PROGRAMS:
        fd = load(name, n, _keep)
        progs.append(dict(info(fd), fd=fd, insn_cnt=n, load_name=name))
    probes = kprobes()
    tracing = fentry(_keep)
    kallsyms = _read("/proc/kallsyms")
    truth = {
        "progs": progs,
        "fentry": tracing,
        "kprobes": probes,
        "kallsyms_bpf": [line for line in kallsyms.splitlines() if line.endswith("[bpf]")],
        "kallsyms_text": [line for line in kallsyms.splitlines()
                          if line.endswith(("[__builtin__kprobes]", "[__builtin__ftrace]"))],
        "modules": _read("/proc/modules"),
        "sections": sections(),
        "sysctl": {k: _read(f"/proc/sys/net/core/{k}").strip() for k in ("bpf_jit_enable", "bpf_jit_harden",
                                                                          "bpf_jit_kallsyms")},
        "pid": os.getpid(),
    }
    return truth


if __name__ == "__main__":
    main()
