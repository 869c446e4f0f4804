"""Runs *inside* a lab guest (python -m tests.lab.in_guest.classic_filter):
attaches a classic BPF socket filter (``SO_ATTACH_FILTER``, as libpcap and
DHCP clients do: no ID, no symbol; the kernel JITs it into a
bpf_prog_pack on 5.18+), then, holding the socket, runs ``exec audit`` and
``exec list --kind bpf-classic`` with BTF in this process and prints
{"pid", "audit", "classic"} as JSON (tests/lab/test_exec_audit.py)."""

import ctypes
import json
import os
import socket
import struct

from click.testing import CliRunner

from kcoretool.cli import cli

SO_ATTACH_FILTER = 26  # include/uapi/asm-generic/socket.h


def main() -> None:
    # ldh [12]; jeq #0x800, accept, drop; accept: ret #96; drop: ret #0
    insns = [(0x28, 0, 0, 12), (0x15, 0, 1, 0x0800), (0x06, 0, 0, 96), (0x06, 0, 0, 0)]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))
    fprog = struct.pack("HL", len(insns), ctypes.addressof(code))  # struct sock_fprog
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    res = {"pid": os.getpid()}
    for key, argv in (("audit", ["--debuginfo", "btf", "--json", "exec", "audit"]),
                      ("classic", ["--debuginfo", "btf", "--json", "exec", "list", "--kind", "bpf-classic"])):
        r = CliRunner().invoke(cli, argv)
        res[key] = {"rc": r.exit_code, "out": r.stdout_bytes.decode(errors="replace"),
                    "err": (r.stderr_bytes or b"").decode(errors="replace")[-2000:]}
    s.close()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
