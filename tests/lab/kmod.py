"""Build tests/kmod against a downloaded kernel's headers (cached by hash)."""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil

from .config import KMOD_SRC, LabError, cache_dir, log, run
from .fetch import KernelFiles

MODULE_NAME = "kcoretool_test"


def source_hash() -> str:
    """Hash of every file in tests/kmod that affects the build."""
    h = hashlib.sha256()
    for p in sorted(KMOD_SRC.iterdir()):
        if p.is_file() and (p.suffix in (".c", ".h") or p.name in ("Kbuild", "Makefile")):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _fix_headers(kf: KernelFiles) -> None:
    """Debian's per-flavour headers Makefile includes the -common one by an
    absolute /usr/src path; point it at our unpacked copy instead."""
    mk = kf.headers_dir / "Makefile"
    text = mk.read_text()
    fixed = re.sub(r"^include /usr/src/", f"include {kf.root}/usr/src/", text, flags=re.M)
    if fixed != text:
        mk.write_text(fixed)


def build(kf: KernelFiles) -> pathlib.Path:
    """Return the path of kcoretool_test.ko for kf.release, building if needed."""
    key = f"{kf.release}-{source_hash()}"
    out = cache_dir() / "kmod" / key
    ko = out / f"{MODULE_NAME}.ko"
    if ko.exists():
        return ko
    _fix_headers(kf)
    build_dir = cache_dir() / "kmod" / f".build-{key}"
    shutil.rmtree(build_dir, ignore_errors=True)
    shutil.copytree(KMOD_SRC, build_dir,
                    ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers", "modules.order"))
    log(f"building {MODULE_NAME}.ko for {kf.release}")
    env = dict(os.environ)
    # Debian's headers name gcc-12 and a ccache wrapper; we have plain gcc 12 on
    # bookworm.  Keep the kernel's own compiler checks quiet but honest.
    cc = shutil.which("gcc-12") or shutil.which("gcc") or "gcc"
    cp = run(["make", "-C", str(kf.headers_dir), f"M={build_dir}", f"CC={cc}", "modules"],
             timeout=600, env=env, check=False)
    built = build_dir / f"{MODULE_NAME}.ko"
    if cp.returncode != 0 or not built.exists():
        errs = [l for l in (cp.stdout + cp.stderr).splitlines() if "error" in l.lower()][:8]
        raise LabError(f"module build for {kf.release} failed: {' | '.join(errs) or cp.stderr[-500:]}")
    warnings = [l for l in (cp.stdout + cp.stderr).splitlines() if "warning:" in l]
    if warnings:
        log(f"module build warnings: {' | '.join(warnings[:5])}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, out / f".{MODULE_NAME}.ko.tmp")
    os.replace(out / f".{MODULE_NAME}.ko.tmp", ko)
    shutil.rmtree(build_dir, ignore_errors=True)
    return ko
