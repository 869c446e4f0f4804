"""A preloaded Python for the guest's ``python -m kcoretool`` and
``python -m tests.lab.in_guest.*`` runs (python -m tests.lab.in_guest.zygote SOCKET).

Under TCG a fresh interpreter spends ~7 s importing kcoretool, click, drgn
and pyelftools before it does anything; the lab starts dozens of them per
kernel.  This process imports them once and forks a child per request, which
then runs the module as ``python -m`` would: own session, the request's
argv, environment, working directory and stdio, its exit status.  drgn
creates no Program here, so its plugins still load in the child, reading
the child's environment (DRGN_DISABLE_PLUGINS).

Protocol, one request per connection (tests/lab/agent.py is the client):
a 4-byte length and a JSON object {argv, env, cwd} sent with three file
descriptors (stdin, stdout, stderr); the reply is two lines, the child's
pid and then its wait status."""

from __future__ import annotations

import atexit
import gc
import json
import os
import runpy
import signal
import socket
import struct
import sys
import traceback


def _preload() -> None:
    import click  # noqa: F401
    import drgn  # noqa: F401
    import elftools.elf.elffile  # noqa: F401
    import tabulate  # noqa: F401

    import kcoretool.api
    import kcoretool.cli  # noqa: F401  (every command's module)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _child(req: dict, fds: list[int]) -> None:
    code = 1
    try:
        os.setsid()
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["cwd"])
        sys.path[0] = req["cwd"]  # what python -m puts first
        argv = req["argv"]
        sys.argv = [argv[0], *argv[3:]]  # run_module puts the module's path in argv[0]
        try:
            runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = _exit_code(e.code)
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (OSError, ValueError):
                pass
    finally:
        os._exit(code)


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    head, fds, _flags, _addr = socket.recv_fds(conn, 4, 3)
    while len(head) < 4:
        more = conn.recv(4 - len(head))
        if not more:
            raise EOFError("short request")
        head += more
    (n,) = struct.unpack("<I", head)
    body = b""
    while len(body) < n:
        more = conn.recv(n - len(body))
        if not more:
            raise EOFError("short request")
        body += more
    return json.loads(body), list(fds)


def main(path: str) -> None:
    _preload()
    gc.freeze()  # the children share the preloaded heap instead of copying it on the first collection
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    srv.bind(tmp)
    srv.listen(4)
    os.rename(tmp, path)  # connectable only once preloaded
    while True:
        conn, _ = srv.accept()
        fds: list[int] = []
        try:
            req, fds = _recv_request(conn)
            if len(fds) != 3:
                raise ValueError(f"{len(fds)} fds, want 3")
            pid = os.fork()
            if pid == 0:
                conn.close()
                srv.close()
                _child(req, fds)
            for fd in fds:
                os.close(fd)
            fds = []
            conn.sendall(f"{pid}\n".encode())
            _, status = os.waitpid(pid, 0)
            conn.sendall(f"{status}\n".encode())
        except Exception:
            traceback.print_exc()
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            conn.close()


if __name__ == "__main__":
    main(sys.argv[1])
