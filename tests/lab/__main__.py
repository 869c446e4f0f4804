"""Command line for the lab: ``python -m tests.lab COMMAND``.

  fetch [KERNEL...]          download + unpack kernels (default: all)
  build [KERNEL...]          fetch, build the test module and the initramfs
  boot KERNEL [--no-module] [--churn] [--snapshot] [-- CMD...]
                             boot; run CMD in the guest, or read commands from stdin
  dump KERNEL                boot, load the module, snapshot; print the files
  selftest [KERNEL...]       exercise the harness itself (agent, timeouts, dumps, churn)
  demo                       regenerate fixtures/demo/ (a filtered 6.12 vmcore + module JSON)
  leak-series [KERNEL...]    dumps of one boot at several points of a growing leak (the
                             fleet benchmark's real dumps), kept under the cache's fleet/
  clean                      remove run directories (dumps) from the cache
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import time
from typing import Optional, Sequence

from . import lab as lab_mod
from .config import KERNELS, LabError, cache_dir, log
from .fetch import fetch


def _kernels(names: Sequence[str]) -> list[str]:
    names = list(names) or list(KERNELS)
    bad = [n for n in names if n not in KERNELS]
    if bad:
        raise SystemExit(f"unknown kernel(s) {bad}; known: {', '.join(KERNELS)}")
    return names


def cmd_fetch(args: argparse.Namespace) -> int:
    for k in _kernels(args.kernels):
        t0 = time.monotonic()
        kf = fetch(k)
        print(f"{k}: {kf.release}  vmlinuz={kf.vmlinuz}  vmlinux={kf.vmlinux}  "
              f"headers={kf.headers_dir}  ({time.monotonic() - t0:.1f}s)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    for k in _kernels(args.kernels):
        kf, ko, initrd = lab_mod.prepare(k)
        print(f"{k}: module={ko}  initramfs={initrd}")
    return 0


def _print_result(rc: int, out: str, err: str) -> None:
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.stdout.flush()


def cmd_boot(args: argparse.Namespace) -> int:
    lk = lab_mod.start(args.kernel, load_module=not args.no_module, take_snapshot=args.snapshot,
                       churn=args.churn)
    with lk:
        if args.command:
            rc, out, err = lk.run(args.command, timeout=args.timeout)
            _print_result(rc, out, err)
            return rc
        print(f"{lk.release} is up; commands run with sh -c in the guest "
              f"(timeout {args.timeout:.0f}s). Ctrl-D or 'exit' to stop.", file=sys.stderr)
        while True:
            try:
                line = input(f"[{lk.kernel}]# ")
            except EOFError:
                break
            if line.strip() in ("exit", "quit"):
                break
            if not line.strip():
                continue
            try:
                rc, out, err = lk.run(["/bin/sh", "-c", line], timeout=args.timeout)
                _print_result(rc, out, err)
                if rc:
                    print(f"[exit {rc}]", file=sys.stderr)
            except LabError as exc:
                print(f"lab: {exc}", file=sys.stderr)
                if not lk.guest.alive():
                    return 1
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    with lab_mod.start(args.kernel) as lk:
        snap = lk.snapshot
        assert snap is not None
        summary = {
            "release": lk.release, "vmlinux": str(lk.vmlinux), "dir": str(snap.dir),
            **{k: str(v) for k, v in snap.paths.items()},
            "module_json": str(snap.dir / "module.json"),
            "vmallocinfo": str(snap.dir / "vmallocinfo.txt"),
            "kallsyms_text": hex(snap.kallsyms_text), "kaslr_offset": hex(snap.kaslr_offset),
            "timings": {k: round(v, 1) for k, v in lk.timings.items()},
        }
        print(json.dumps(summary, indent=1))
        print(f"(the run directory is kept until the next lab run of {args.kernel} "
              f"or `python -m tests.lab clean`)", file=sys.stderr)
    return 0


DEMO_KERNEL = "6.12"
# 256 MiB keeps the dump small (struct pages, page tables); the module's
# areas and the kernel image (with its BTF) are the rest: about 23 MB.
DEMO_MEM_MB = 256
DEMO_MAX_BYTES = 25 * 1000 * 1000


def cmd_demo(args: argparse.Namespace) -> int:
    """Boot 6.12, load the module, take the snapshot, copy its makedumpfile -c
    dump, module JSON and vmallocinfo into fixtures/demo/."""
    import shutil

    out = pathlib.Path(args.out)
    with lab_mod.start(DEMO_KERNEL, mem_mb=DEMO_MEM_MB) as lk:
        snap = lk.snapshot
        assert snap is not None
        kdump = snap.kdump
        size = kdump.stat().st_size
        if size > DEMO_MAX_BYTES:
            print(f"demo: {kdump} is {size} bytes, over the {DEMO_MAX_BYTES} budget", file=sys.stderr)
            return 1
        out.mkdir(parents=True, exist_ok=True)
        stem = f"demo-{DEMO_KERNEL}"
        shutil.copyfile(kdump, out / f"{stem}.kdump")
        shutil.copyfile(snap.dir / "module.json", out / f"{stem}.module.json")
        shutil.copyfile(snap.dir / "vmallocinfo.txt", out / f"{stem}.vmallocinfo")
        print(json.dumps({"release": lk.release, "kdump": str(out / f"{stem}.kdump"), "bytes": size}))
    return 0


#: Areas the module holds at each point of the leak series ("grow N" between
#: points; KCT_GROW_PAGES = 2 pages each): 0, 512, 2048 and 8192 areas.
LEAK_POINTS = (0, 512, 2048, 8192)


def leak_series_dir(kernel: str) -> pathlib.Path:
    return cache_dir() / "fleet" / kernel


def cmd_leak_series(args: argparse.Namespace) -> int:
    """Boot each kernel with the module, then at each point of LEAK_POINTS
    grow the module's leak and dump (compressed kdump and makedumpfile ELF;
    QEMU's raw ELF only at the first point: it is the guest's whole memory);
    last, crash the kernel holding the most (sysrq-c) and dump it in its
    panic: ``panic/`` (all three formats).  Complete points (a ``done``
    file) are kept across runs; the points of one series share one boot."""
    from . import snapshot as snapshot_mod

    control = "/sys/kernel/debug/kcoretool_test/control"
    for k in _kernels(args.kernels):
        base = leak_series_dir(k)
        todo = [n for n in LEAK_POINTS if not (base / f"leak-{n:05d}" / "done").exists()]
        panic_dir = base / "panic"
        if not todo and (panic_dir / "done").exists():
            print(f"{k}: {base} complete")
            continue
        if todo:
            shutil.rmtree(base, ignore_errors=True)  # points of different boots don't add up
        with lab_mod.start(k, take_snapshot=False) as lk:
            held = 0
            for i, n in enumerate(LEAK_POINTS if todo else LEAK_POINTS[-1:]):
                if n > held:
                    lk.guest.write(control, f"grow {n - held}")
                    held = n
                if not todo:
                    break
                out = base / f"leak-{n:05d}"
                snap = snapshot_mod.take(lk.guest, out, background=False)
                if i:
                    snap.elf.unlink()
                (out / "done").write_text(f"{lk.release} {n} areas\n")
                print(f"{k}: {out}: {n} areas held", flush=True)
            shutil.rmtree(panic_dir, ignore_errors=True)
            panic_dir.mkdir(parents=True)
            line = lk.guest.panic()
            snapshot_mod.panic_dump(lk.guest, panic_dir)
            (panic_dir / "done").write_text(f"{lk.release} {held} areas; {line}\n")
            print(f"{k}: {panic_dir}: {line}", flush=True)
    return 0


def _check(ok: bool, what: str, failures: list[str]) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def cmd_selftest(args: argparse.Namespace) -> int:
    from .vmallocinfo import parse

    failures: list[str] = []
    kernels = _kernels(args.kernels)
    for k in kernels:
        print(f"== {k}")
        with lab_mod.start(k, then_prepare=kernels) as lk:
            g, snap = lk.guest, lk.snapshot
            assert snap is not None and snap.module is not None
            rc, out, _ = lk.run(["uname", "-r"], timeout=30)
            _check(rc == 0 and out.strip() == lk.release, f"uname -r = {out.strip()}", failures)
            rc, out, err = lk.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
            _check((rc, out, err) == (3, "out\n", "err\n"), "returncode/stdout/stderr plumbing", failures)
            t0 = time.monotonic()
            rc, _, err = lk.run(["sleep", "60"], timeout=2)
            dt = time.monotonic() - t0
            _check(rc == -9 and dt < 15, f"in-guest timeout kills the command ({dt:.1f}s)", failures)
            rc, out, _ = lk.run([g.python, "-c", "import kcoretool, sys; print(sys.executable)"], timeout=120)
            _check(rc == 0 and out.strip() == g.python, "host Python + repo importable in the guest", failures)
            for name, p in snap.paths.items():
                _check(p.exists() and p.stat().st_size > 1 << 20, f"{name}: {p.name} "
                       f"{p.stat().st_size >> 20 if p.exists() else 0} MiB", failures)
            with open(snap.elf, "rb") as f:
                head = f.read(64)
            _check(int.from_bytes(head[32:40], "little") == 64, "raw ELF phdrs at offset 64", failures)
            vmi = {l.start: l for l in parse(snap.vmallocinfo)}
            missing = [a["name"] for a in snap.module["areas"]
                       if a["kind"] in ("vmalloc", "vmalloc_huge", "vmap", "vm_map_ram_large",
                                        "lazy_freed") and a["addr"] not in vmi]
            _check(not missing, f"{len(snap.module['areas'])} module areas listed in vmallocinfo "
                   f"(missing: {missing})", failures)
            g.write("/sys/kernel/debug/kcoretool_test/control", "churn_start")
            time.sleep(args.churn_seconds)
            rate = int(g.read("/sys/kernel/debug/kcoretool_test/churn_rate").strip())
            total = int(g.read("/sys/kernel/debug/kcoretool_test/churn_total").strip())
            g.write("/sys/kernel/debug/kcoretool_test/control", "churn_stop")
            _check(rate >= 1000, f"churn: {rate} areas/s ({total} total)", failures)
            print(f"  timings: {', '.join(f'{k}={v:.1f}s' for k, v in lk.timings.items())}")
    print("selftest:", "FAILED: " + "; ".join(failures) if failures else "all ok")
    return 1 if failures else 0


def cmd_clean(args: argparse.Namespace) -> int:
    runs = cache_dir() / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    print(f"removed {runs}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("fetch")
    s.add_argument("kernels", nargs="*")
    s.set_defaults(fn=cmd_fetch)
    s = sub.add_parser("build")
    s.add_argument("kernels", nargs="*")
    s.set_defaults(fn=cmd_build)
    s = sub.add_parser("boot")
    s.add_argument("kernel")
    s.add_argument("--no-module", action="store_true", help="do not load the test module")
    s.add_argument("--churn", action="store_true", help="load the module with churn=1")
    s.add_argument("--snapshot", action="store_true", help="also take the snapshot (dumps)")
    s.add_argument("--timeout", type=float, default=300.0, help="per-command timeout (s)")
    s.set_defaults(fn=cmd_boot, command=[])
    s = sub.add_parser("dump")
    s.add_argument("kernel")
    s.set_defaults(fn=cmd_dump)
    s = sub.add_parser("selftest")
    s.add_argument("kernels", nargs="*")
    s.add_argument("--churn-seconds", type=float, default=3.0)
    s.set_defaults(fn=cmd_selftest)
    s = sub.add_parser("demo")
    s.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "demo"))
    s.set_defaults(fn=cmd_demo)
    s = sub.add_parser("leak-series")
    s.add_argument("kernels", nargs="*")
    s.set_defaults(fn=cmd_leak_series)
    s = sub.add_parser("clean")
    s.set_defaults(fn=cmd_clean)
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is the guest command (boot), never lab options.
    command: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    args = p.parse_args(argv)
    if command:
        if args.cmd != "boot":
            p.error("'-- CMD' is only for boot")
        args.command = command
    try:
        return args.fn(args)
    except LabError as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
