"""Build tests/kmod against a downloaded kernel's headers (cached by hash)."""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil

from .config import KMOD_SRC, SERIES_BY_NAME, LabError, cache_dir, cache_lock, log, run
from .fetch import KernelFiles

MODULE_NAME = "kcoretool_test"
#: issue 24's opt-in rootkit stand-in, built beside it (kcoretool_hide.c)
HIDE_MODULE_NAME = "kcoretool_hide"


def source_hash() -> str:
    """Hash of every file in tests/kmod that affects the build."""
    h = hashlib.sha256()
    for p in sorted(KMOD_SRC.iterdir()):
        if p.is_file() and (p.suffix in (".c", ".h") or p.name in ("Kbuild", "Makefile")):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _fix_headers(kf: KernelFiles) -> None:
    """Debian's per-flavour headers Makefile includes the -common one by an
    absolute /usr/src path (and, from trixie on, sets KBUILD_OUTPUT to its
    own /usr/src path); point both at our unpacked copy instead."""
    mk = kf.headers_dir / "Makefile"
    text = mk.read_text()
    fixed = re.sub(r"^include /usr/src/", f"include {kf.root}/usr/src/", text, flags=re.M)
    fixed = re.sub(r"^(KBUILD_OUTPUT\s*:?=\s*)/usr/src/", rf"\g<1>{kf.root}/usr/src/", fixed, flags=re.M)
    if fixed != text:
        mk.write_text(fixed)


def build(kf: KernelFiles) -> pathlib.Path:
    """Return the path of kcoretool_test.ko for kf.release, building if needed
    (kcoretool_hide.ko is built beside it: :func:`hide_module`)."""
    key = f"{kf.release}-{source_hash()}"
    out = cache_dir() / "kmod" / key
    ko = out / f"{MODULE_NAME}.ko"
    if ko.exists() and hide_module(ko).exists():
        return ko
    _fix_headers(kf)
    build_dir = cache_dir() / "kmod" / f".build-{key}"
    shutil.rmtree(build_dir, ignore_errors=True)
    shutil.copytree(KMOD_SRC, build_dir,
                    ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers", "modules.order"))
    log(f"building {MODULE_NAME}.ko for {kf.release}")
    env = dict(os.environ)
    suite = SERIES_BY_NAME[kf.series].build_suite if kf.series in SERIES_BY_NAME else ""
    if suite:
        # The headers' own compiler (7.x: x86_64-linux-gnu-gcc-14) in a build
        # root of that suite; the cache is bind-mounted at its own path and
        # /proc mounted (objtool reads it), in a private mount namespace.
        broot = build_root(suite)
        cache = cache_dir()
        script = (f"mkdir -p {broot}{cache} && mount --bind {cache} {broot}{cache} && "
                  f"mount -t proc proc {broot}/proc && "
                  f"exec chroot {broot} make -C {kf.headers_dir} M={build_dir} modules")
        cp = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                 timeout=900, env=env, check=False)
    else:
        # Debian's headers name gcc-12 (6.x) or gcc-10 (5.10) and a ccache
        # wrapper; bookworm's plain gcc 12 builds both.
        cc = shutil.which("gcc-12") or shutil.which("gcc") or "gcc"
        cp = run(["make", "-C", str(kf.headers_dir), f"M={build_dir}", f"CC={cc}", "modules"],
                 timeout=600, env=env, check=False)
    built = build_dir / f"{MODULE_NAME}.ko"
    if cp.returncode != 0 or not built.exists() or not (build_dir / f"{HIDE_MODULE_NAME}.ko").exists():
        errs = [l for l in (cp.stdout + cp.stderr).splitlines() if "error" in l.lower()][:8]
        raise LabError(f"module build for {kf.release} failed: {' | '.join(errs) or cp.stderr[-500:]}")
    warnings = [l for l in (cp.stdout + cp.stderr).splitlines() if "warning:" in l]
    if warnings:
        log(f"module build warnings: {' | '.join(warnings[:5])}")
    out.mkdir(parents=True, exist_ok=True)
    for name in (HIDE_MODULE_NAME, MODULE_NAME):  # kcoretool_test.ko last: it marks the build done
        shutil.copy2(build_dir / f"{name}.ko", out / f".{name}.ko.tmp")
        os.replace(out / f".{name}.ko.tmp", out / f"{name}.ko")
    shutil.rmtree(build_dir, ignore_errors=True)
    return ko


def hide_module(ko: pathlib.Path) -> pathlib.Path:
    """kcoretool_hide.ko, built with the test module ``ko``."""
    return ko.with_name(f"{HIDE_MODULE_NAME}.ko")


#: what building a module needs besides the buildd variant (pahole: 7.x
#: generates the module's BTF)
BUILD_ROOT_PACKAGES = "gcc-14,make,libelf-dev,bc,kmod,dwarves"


def build_root(suite: str) -> pathlib.Path:
    """A minimal Debian ``suite`` build root (mmdebstrap buildd variant with
    gcc-14, ~490 MB, ~20 s), made once and cached."""
    root = cache_dir() / f"buildroot-{suite}"
    done = root / f".kct-complete-{hashlib.sha256(BUILD_ROOT_PACKAGES.encode()).hexdigest()[:8]}"
    if done.exists():
        return root
    with cache_lock(f"buildroot-{suite}", timeout=1800):
        if done.exists():
            return root
        shutil.rmtree(root, ignore_errors=True)
        log(f"making a {suite} build root with mmdebstrap")
        run(["mmdebstrap", "--variant=buildd", f"--include={BUILD_ROOT_PACKAGES}",
             suite, str(root), "http://deb.debian.org/debian"], timeout=1800)
        done.touch()
    return root
