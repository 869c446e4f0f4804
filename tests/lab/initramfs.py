"""Build the guest's initramfs: busybox, the 9p/fw_cfg modules and /init.

/init mounts the host root (9p, read-only) and the writable lab share, then
chroots into the host root and runs the agent (tests/lab/agent.py) with the
host's own Python.  Run-specific values come from the kernel command line
(kct_* variables, which the kernel hands to init as environment), so one
initramfs per kernel release serves every run.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import pathlib
import stat
import subprocess

from .config import LabError, cache_dir, log
from .fetch import KernelFiles

# Modules the guest needs, by name; missing ones are built in (6.12 has virtio
# built in).  qemu_fw_cfg makes VMCOREINFO reach QEMU's vmcoreinfo device.
WANTED = ("virtio_pci", "9pnet_virtio", "9p", "qemu_fw_cfg")

# The host root is mounted cache=loose: it does not change during a run, and
# with cache=none every guest process re-read the vmlinux's DWARF and the
# venv over 9p (drgn's DWARF load on 6.12: 29 s, now 10-12 s).  The share,
# written by both sides, stays cache=none.
INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /host /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "kct-init: loading modules" > /dev/console
for m in $(cat /modules.load); do
    insmod /modules/$m || echo "kct-init: insmod $m failed" > /dev/console
done
# kptr_restrict=1 makes %pK print real addresses to root (vmallocinfo, kallsyms).
echo 1 > /proc/sys/kernel/kptr_restrict
fail() { echo "kct-init: FATAL: $*" > /dev/console; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host || fail "mount hostroot"
mount -t proc proc /host/proc || fail "mount proc"
mount -t sysfs sys /host/sys || fail "mount sys"
mount -t debugfs debugfs /host/sys/kernel/debug || fail "mount debugfs"
mount -t devtmpfs dev /host/dev || fail "mount dev"
# The guest gets a writable tmpfs /tmp, but host paths under /tmp that the lab
# needs (a cache, repo or venv there: kct_tmpbind=/a,/b relative to /tmp) stay
# visible by bind-mounting them back from the host root.
mkdir -p /hosttmp
mount --bind /host/tmp /hosttmp || fail "bind host /tmp"
mount -t tmpfs tmp /host/tmp || fail "mount tmp"
for p in $(echo "$kct_tmpbind" | tr ',' ' '); do
    mkdir -p "/host/tmp$p" && mount --bind "/hosttmp$p" "/host/tmp$p" || fail "bind /tmp$p"
done
mount -t tmpfs run /host/run 2>/dev/null
# The share last: it may live under /tmp (a cache in /tmp), which the tmpfs
# above would otherwise hide; its mount point then has to be made in the tmpfs.
mkdir -p "/host$kct_share" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 labshare "/host$kct_share" || fail "mount labshare"
echo "kct-init: starting agent" > /dev/console
# exec: the agent becomes pid 1; if it dies the kernel panics and QEMU exits
# (-no-reboot, panic=-1), which the host notices.
exec chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PYTHONPATH="$kct_repo" "$kct_python" "$kct_repo/tests/lab/agent.py" "$kct_share/agent"
"""


def _busybox() -> pathlib.Path:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return pathlib.Path(p)
    raise LabError("busybox-static not installed")


def _deps(kf: KernelFiles) -> tuple[dict[str, list[str]], dict[str, str]]:
    """modules.dep as {path: [dep paths]} and {module name: path}."""
    dep: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (kf.modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        dep[path] = rest.split()
        name = pathlib.Path(path).name.split(".ko")[0].replace("-", "_")
        by_name[name] = path
    return dep, by_name


def _load_order(kf: KernelFiles) -> list[str]:
    dep, by_name = _deps(kf)
    # trixie's packages ship only the binary index (modules.builtin.bin):
    # a wanted module outside modules.dep is then taken as built in (the
    # guest's mount of the host root fails loudly if it is not).
    listed = kf.modules_dir / "modules.builtin"
    builtin = listed.read_text() if listed.exists() else None
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for d in dep.get(path, []):
            visit(d)
        order.append(path)

    for name in WANTED:
        if name in by_name:
            visit(by_name[name])
        elif builtin is not None and f"/{name}.ko" not in builtin:
            raise LabError(f"{kf.release}: module {name} neither built in nor in modules.dep")
    return order


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """Write a newc cpio archive (name, mode, data); symlinks carry the target as data."""
    out = io.BytesIO()
    ino = 1
    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        nameb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nameb), 0))
        out.write(hdr.encode() + nameb)
        out.write(b"\0" * ((4 - (110 + len(nameb)) % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - len(data) % 4) % 4))
        ino += 1
    return out.getvalue()


def build(kf: KernelFiles) -> pathlib.Path:
    """Return the initramfs for kf.release (cached on release + content hash)."""
    order = _load_order(kf)
    h = hashlib.sha256(INIT.encode() + "\n".join(order).encode() + kf.release.encode())
    h.update(_busybox().read_bytes()[:65536])
    out = cache_dir() / "initramfs" / f"{kf.release}-{h.hexdigest()[:12]}.cpio.gz"
    if out.exists():
        return out
    log(f"building initramfs for {kf.release}")
    D, F = stat.S_IFDIR | 0o755, stat.S_IFREG
    entries: list[tuple[str, int, bytes]] = [
        (d, D, b"") for d in ("bin", "dev", "proc", "sys", "host", "tmp", "modules")]
    entries.append(("bin/busybox", F | 0o755, _busybox().read_bytes()))
    entries.append(("init", F | 0o755, INIT.encode()))
    names = []
    for path in order:
        data = (kf.modules_dir / path).read_bytes()
        if path.endswith(".xz"):
            data = lzma.decompress(data)
        elif path.endswith(".zst"):
            try:
                data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True,
                                      check=True, timeout=60).stdout
            except (OSError, subprocess.SubprocessError) as exc:
                raise LabError(f"cannot decompress {path}: {exc}") from exc
        name = pathlib.Path(path).name.split(".ko")[0] + ".ko"
        entries.append((f"modules/{name}", F | 0o644, data))
        names.append(name)
    entries.append(("modules.load", F | 0o644, ("\n".join(names) + "\n").encode()))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=6))
    os.replace(tmp, out)
    return out
