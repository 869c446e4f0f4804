"""Paths, kernel series and small shared helpers for the lab."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Iterator, Mapping, Optional, Sequence


@dataclasses.dataclass(frozen=True)
class Expect:
    """What the lab's checks expect of a kernel series: kcoretool's layout
    decisions (kernel/layout.py) and the kernel's own /proc/kcore defects,
    as measured on Debian's build of it."""

    #: (busy, va_flags, lazy, block_index) of :class:`kcoretool.kernel.layout.Layout`
    layout: tuple[str, str, str, str]
    #: vmap_block.used_map (6.3+), vmap_block.cpu (6.10+), node id in
    #: vmap_area.flags and VM_SPARSE (6.9+), vm_struct.page_order (5.13+),
    #: vm_struct.requested_size (6.16+)
    used_map: bool
    block_cpu: bool
    nodes: bool
    page_order: bool
    requested_size: bool
    #: how /proc/kcore reads vm_map_ram pages: "zeros" (vread() skips areas
    #: without a vm_struct, <= 6.2) or "first-page" (every block piece reads
    #: as the block's first used page, 6.3+)
    kcore_ram: str
    #: crash 8.0.2 (bookworm) reads this layout (it predates vmap_nodes)
    crash: bool
    #: a core-kernel vmalloc function whatis resolves (6.10+: _noprof names)
    vmalloc_fn: str
    #: vmalloc_huge() exists (5.18+): the test module makes its 4 MiB area
    huge: bool = True
    #: modules carry split BTF (CONFIG_DEBUG_INFO_BTF_MODULES, 5.11+)
    module_btf: bool = True
    #: JIT images live in bpf_prog_pack chunks (5.18+), not each in its own area
    bpf_pack: bool = True
    #: module text sub-allocated in the execmem ROX cache (CONFIG_ARCH_HAS_EXECMEM_ROX)
    rox_cache: bool = False


@dataclasses.dataclass(frozen=True)
class Series:
    """One kernel series the lab boots: where Debian ships it and the few
    facts about it the lab itself needs (not what kcoretool detects)."""

    #: "6.1": the release must start with it, then "." or "-"
    name: str
    #: Debian suites that carry it besides the machine's own ("": the machine's
    #: own apt sources); extra suites go through a private APT configuration
    suites: tuple[str, ...]
    #: makedumpfile -d: 31 drops slab pages, which drgn needs on 6.12+ ("Excluded page")
    dump_level: int
    expect: Expect
    #: Debian suite whose compiler builds out-of-tree modules ("": the host's
    #: gcc 12); 7.x headers name gcc-14 with flags gcc 12 rejects
    build_suite: str = ""


_OLD = ("vmap_area_list", "none")
_NODES = ("vmap_nodes", "vmap_ram", "nodes", "percpu")

# Every series the lab boots.  The exact ABI (6.1.0-NN, 7.3.4+deb13) is
# resolved with apt-cache at fetch time because updates move it.  Adding a
# kernel is one line here (tests/lab/README.md, "Adding a kernel").
SERIES: tuple[Series, ...] = (
    Series("5.10", ("bullseye", "bullseye-security"), 31, Expect(
        (*_OLD, "llist", "global"), False, False, False, False, False, "zeros", True, "__vmalloc_node_range",
        huge=False, module_btf=False, bpf_pack=False)),
    Series("6.1", (), 31, Expect(
        (*_OLD, "list", "global"), False, False, False, True, False, "zeros", True, "__vmalloc_node_range")),
    # Debian's 6.12.118 carries vm_struct.requested_size (a vrealloc fix backported)
    Series("6.12", (), 23, Expect(
        _NODES, True, True, True, True, True, "first-page", False, "__vmalloc_node_range_noprof")),
    Series("7.3", ("trixie", "trixie-backports"), 23, Expect(
        _NODES, True, True, True, True, True, "first-page", False, "__vmalloc_node_range_noprof",
        rox_cache=True), build_suite="trixie"),
)
SERIES_BY_NAME = {s.name: s for s in SERIES}
KERNELS: tuple[str, ...] = tuple(s.name for s in SERIES)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
KMOD_SRC = REPO_ROOT / "tests" / "kmod"

# Guest RAM in MiB: 512 is enough for drgn in the guest (lab notes) and keeps
# dumps and makedumpfile runs small.
DEFAULT_MEM_MB = int(os.environ.get("KCORETOOL_LAB_MEM", "1024"))


class LabError(RuntimeError):
    """The lab tried to do something and it failed (a real failure)."""


class LabUnavailable(LabError):
    """The lab cannot run on this machine (not root, no apt, no qemu ...)."""


def cache_dir() -> pathlib.Path:
    """Root of everything the lab downloads or builds (never the repo)."""
    env = os.environ.get("KCORETOOL_LAB_CACHE")
    base = pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "kcoretool" / "lab"
    base.mkdir(parents=True, exist_ok=True)
    return base.resolve()


def log(msg: str) -> None:
    """Progress messages go to stderr so pytest -s and the CLI both show them."""
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Optional[os.PathLike] = None,
    env: Optional[Mapping[str, str]] = None,
    check: bool = True,
    capture: bool = True,
) -> subprocess.CompletedProcess:
    """subprocess.run with a mandatory timeout and a readable LabError."""
    try:
        cp = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{argv[0]} timed out after {timeout:.0f}s: {' '.join(map(str, argv))}") from exc
    except FileNotFoundError as exc:
        raise LabUnavailable(f"{argv[0]} not found") from exc
    if check and cp.returncode != 0:
        tail = (cp.stderr or cp.stdout or "").strip().splitlines()[-5:]
        raise LabError(f"{' '.join(map(str, argv))} failed ({cp.returncode}): {' | '.join(tail)}")
    return cp


@contextlib.contextmanager
def cache_lock(name: str, timeout: float) -> Iterator[None]:
    """Exclusive lock between lab processes sharing the cache (several test
    sessions may prepare the same kernel at once), bounded in time."""
    import fcntl

    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(path, "w") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"cache lock {path} still held after {timeout:.0f}s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the (forking thread of the) lab
    process dies, so a killed pytest never leaves QEMU or makedumpfile behind."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise LabUnavailable(f"missing host tools: {', '.join(missing)}")


def check_environment() -> None:
    """Raise LabUnavailable with a one-line reason if the lab cannot run here."""
    if os.geteuid() != 0:
        raise LabUnavailable("lab needs root (9p export of / and apt-get download)")
    require_tools("apt-get", "apt-cache", "dpkg-deb", "qemu-system-x86_64", "cpio",
                  "makedumpfile", "depmod", "make", "gcc", "tar")
    if not pathlib.Path("/bin/busybox").exists() and shutil.which("busybox") is None:
        raise LabUnavailable("busybox-static not installed")
