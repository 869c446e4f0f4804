"""High level: prepare a kernel, boot it, load the test module, snapshot.

``start(kernel)`` returns a :class:`LabKernel`, the object the pytest
fixture yields (API documented in tests/lab/README.md).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any, Iterable, Optional, Sequence

from . import initramfs, kmod
from . import snapshot as snapshot_mod
from .config import DEFAULT_MEM_MB, REPO_ROOT, LabError, cache_dir, cache_lock, check_environment, log
from .fetch import KernelFiles, fetch
from .guest import Guest
from .snapshot import Snapshot

KCT_DEBUGFS = "/sys/kernel/debug/kcoretool_test"


def parse_system_ram(iomem: str) -> list[tuple[int, int]]:
    """Top-level "System RAM" ranges of /proc/iomem as inclusive (start, end)."""
    out = []
    for line in iomem.splitlines():
        if line.startswith(" "):
            continue
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) : System RAM$", line.strip())
        if m:
            out.append((int(m.group(1), 16), int(m.group(2), 16)))
    return out


def host_kcoretool(*args: str, timeout: float = 300) -> tuple[int, str, str]:
    """Run ``python -m kcoretool ARGS`` on the host (e.g. on the saved dumps)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        cp = subprocess.run([sys.executable, "-m", "kcoretool", *map(str, args)], capture_output=True,
                            text=True, errors="replace", timeout=timeout, cwd=str(REPO_ROOT), env=env)
    except subprocess.TimeoutExpired:
        return -9, "", f"kcoretool timed out after {timeout}s on the host\n"
    return cp.returncode, cp.stdout, cp.stderr


class LabKernel:
    """A booted lab kernel: live guest + the snapshot taken after module load."""

    def __init__(self, kernel: str, files: KernelFiles, guest: Guest, module_path: pathlib.Path,
                 workdir: pathlib.Path) -> None:
        self.kernel = kernel
        self.files = files
        self.release = files.release
        self.vmlinux: pathlib.Path = files.vmlinux
        self.guest = guest
        self.module_path = module_path
        self.workdir = workdir
        self.snapshot: Optional[Snapshot] = None
        self.ground_truth: dict[str, Any] = {}
        #: issue 12: BPF programs loaded before the snapshot + executable-memory truth
        self.exec_truth: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        #: tests.lab.in_guest.maps.py's JSON (pid, regions), alive in the guest
        self.maps_process: Optional[dict] = None

    # -- live guest --
    def run(self, argv: Sequence[str], timeout: float = 120) -> tuple[int, str, str]:
        return self.guest.run(argv, timeout=timeout)

    def kcoretool(self, *args: str, timeout: float = 300) -> tuple[int, str, str]:
        return self.guest.kcoretool(*args, timeout=timeout)

    def kcoretool_host(self, *args: str, timeout: float = 300) -> tuple[int, str, str]:
        """``python -m kcoretool ARGS`` on the host (for the snapshot files)."""
        return host_kcoretool(*args, timeout=timeout)

    def read(self, path: str) -> str:
        return self.guest.read(path)

    def take_snapshot(self, name: str = "snapshot", free_lazy: bool = True) -> Snapshot:
        t0 = time.monotonic()
        snap = snapshot_mod.take(self.guest, self.workdir / name, free_lazy=free_lazy)
        self.timings[f"{name}_s"] = time.monotonic() - t0
        return snap

    def _fill_ground_truth(self) -> None:
        snap = self.snapshot
        assert snap is not None
        rc, uname_r, err = self.run(["uname", "-r"], timeout=60)
        if rc != 0:
            raise LabError(f"uname -r failed in guest: {err.strip()}")
        cpus = 0
        for part in snap.cpus_online.split(","):
            a, _, b = part.partition("-")
            cpus += (int(b) - int(a) + 1) if b else 1
        self.ground_truth = {
            "release": uname_r.strip(),
            "arch": "x86_64",
            "page_size": 4096,
            "kallsyms_text": snap.kallsyms_text,
            "kaslr_offset": snap.kaslr_offset,
            "cpus": cpus,
            "system_ram": parse_system_ram(snap.iomem),
            "vmalloc_start": snap.variables.get("vmalloc_base"),
            "page_offset_base": snap.variables.get("page_offset_base"),
            "vmemmap_base": snap.variables.get("vmemmap_base"),
            # MODULES_VADDR = __START_KERNEL_map + KERNEL_IMAGE_SIZE (1 GiB with KASLR)
            "modules_vaddr": 0xFFFFFFFFC0000000,
            "modules_end": 0xFFFFFFFFFF000000,
            "symbols": dict(snap.symbols),
            "module_path": str(self.module_path),
        }

    def close(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
        self.guest.close()

    def __enter__(self) -> LabKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _workdir(kernel: str, tag: str = "") -> pathlib.Path:
    """runs/<kernel>[-<tag>]-<pid>; stale dirs of dead processes are removed.
    A tag lets one process run a second guest of the same kernel."""
    runs = cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stem = f"{kernel}-{tag}" if tag else kernel
    for d in runs.glob(f"{stem}-*"):
        m = re.fullmatch(rf"{re.escape(stem)}-(\d+)", d.name)
        if m and int(m.group(1)) != os.getpid():
            try:
                os.kill(int(m.group(1)), 0)
                continue  # another live lab run owns it
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            shutil.rmtree(d, ignore_errors=True)
    wd = runs / f"{stem}-{os.getpid()}"
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    return wd


def _prepare(kernel: str) -> tuple[KernelFiles, pathlib.Path, pathlib.Path]:
    check_environment()
    # One preparer per kernel across processes: the steps are idempotent but
    # two concurrent builds would trample each other's scratch directories.
    with cache_lock(f"prepare-{kernel}", timeout=PREPARE_TIMEOUT_S):
        files = fetch(kernel)
        return files, kmod.build(files), initramfs.build(files)


_prepared: dict[str, Future] = {}
_prepared_lock = threading.Lock()
PREPARE_TIMEOUT_S = 3600.0


def prepare_async(kernel: str) -> Future:
    """Start (once per process) fetching/building a kernel in a daemon thread,
    so a cold second kernel downloads while the first one boots and is tested.
    A daemon thread never holds up interpreter exit; interrupted work is
    redone by the next run (every step is marker-guarded)."""
    with _prepared_lock:
        fut = _prepared.get(kernel)
        if fut is None:
            fut = _prepared[kernel] = Future()

            def work() -> None:
                try:
                    fut.set_result(_prepare(kernel))
                except BaseException as exc:  # handed to whoever waits
                    fut.set_exception(exc)

            threading.Thread(target=work, name=f"lab-prepare-{kernel}", daemon=True).start()
        return fut


def prefetch(kernels: Iterable[str]) -> None:
    for k in kernels:
        prepare_async(k)


def prepare(kernel: str) -> tuple[KernelFiles, pathlib.Path, pathlib.Path]:
    """Fetch, build the module and the initramfs (all cached)."""
    return prepare_async(kernel).result(timeout=PREPARE_TIMEOUT_S)


#: boots per kernel: a TCG guest on a loaded 2-core host now and then panics
#: while booting or stalls with soft lockups (seen once each in ~20 boots);
#: a second boot is cheaper than a failed CI run.
BOOT_ATTEMPTS = 2


@dataclasses.dataclass
class Panicked:
    """The dumps of a second, small guest of a lab kernel that held
    kcoretool_hide.ko's planted pages (an executable page no one owns, a W+X
    page, the module off the module list) and then crashed (sysrq-c); shared
    by the exec audit's planted checks and the fleet's panic checks, so the
    planted pages cost no snapshot of the big guest."""
    line: str                          # the console's "Kernel panic - not syncing: ..." line
    paths: dict[str, pathlib.Path]     # elf, kdump, elf_filtered
    rox: int                           # the unowned executable page
    wx: int                            # the W+X page
    modules: str                       # /proc/modules just before the crash


def panicked(lab: LabKernel) -> Panicked:
    from .kmod import hide_module

    params = "/sys/module/kcoretool_hide/parameters"
    with start(lab.kernel, load_module=False, take_snapshot=False, mem_mb=256, tag="panic") as lk:
        rc, _o, err = lk.run(["/sbin/insmod", str(hide_module(lab.module_path))], timeout=120)
        if rc != 0:
            raise LabError(f"insmod kcoretool_hide failed ({rc}): {err.strip()[-300:]}")
        rox, wx = int(lk.guest.read(f"{params}/rox_addr")), int(lk.guest.read(f"{params}/wx_addr"))
        modules = lk.guest.read("/proc/modules")
        line = lk.guest.panic()
        paths = snapshot_mod.panic_dump(lk.guest, lk.workdir / "panic")
    return Panicked(line, paths, rox, wx, modules)


def start(kernel: str, *, load_module: bool = True, take_snapshot: bool = True,
          churn: bool = False, mem_mb: int = DEFAULT_MEM_MB,
          then_prepare: Iterable[str] = (), tag: str = "") -> LabKernel:
    """Boot ``kernel`` ("6.1"/"6.12"), load the module, snapshot.  The caller
    must close() the result (it owns a QEMU process).  ``then_prepare``: kernels
    to fetch/build in the background once this one is prepared.  A guest that
    dies or hangs before it is ready is booted once more."""
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        try:
            return _start(kernel, load_module=load_module, take_snapshot=take_snapshot, churn=churn,
                          mem_mb=mem_mb, then_prepare=then_prepare, tag=tag)
        except LabError as e:
            if attempt == BOOT_ATTEMPTS:
                raise
            log(f"{kernel}: attempt {attempt} failed ({str(e)[:300]}); booting again")
    raise AssertionError("unreachable")


def _start(kernel: str, *, load_module: bool, take_snapshot: bool, churn: bool, mem_mb: int,
           then_prepare: Iterable[str], tag: str = "") -> LabKernel:
    t0 = time.monotonic()
    files, ko, initrd = prepare(kernel)
    prefetch(k for k in then_prepare if k != kernel)
    t_prep = time.monotonic() - t0
    wd = _workdir(kernel, tag)
    guest = Guest(kernel=kernel, release=files.release, vmlinuz=files.vmlinuz, initrd=initrd,
                  workdir=wd, mem_mb=mem_mb)
    guest.start()
    lk = LabKernel(kernel, files, guest, ko, wd)
    lk.timings.update(prepare_s=t_prep, boot_s=guest.boot_seconds or 0.0)
    try:
        if load_module:
            argv = ["/sbin/insmod", str(ko)] + (["churn=1"] if churn else [])
            rc, out, err = guest.run(argv, timeout=120)
            if rc != 0:
                raise LabError(f"insmod {ko.name} failed ({rc}): {(err or out).strip()[-300:]}; "
                               f"console: {guest.console_tail(3)}")
        if take_snapshot:
            from . import exec_truth

            lk.exec_truth = exec_truth.start(guest, wd)
            from .guest_maps_hook import start_maps_process

            lk.maps_process = start_maps_process(guest)  # issue 13: a process with known mappings
            lk.snapshot = lk.take_snapshot(free_lazy=load_module)
            lk._fill_ground_truth()
    except BaseException:
        lk.close()
        raise
    lk.timings["total_s"] = time.monotonic() - t0
    log(f"{files.release}: ready ({', '.join(f'{k}={v:.1f}' for k, v in lk.timings.items())})")
    return lk
