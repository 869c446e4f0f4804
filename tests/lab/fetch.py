"""Resolve, download and unpack a Debian kernel (image, -dbg vmlinux, headers).

Nothing is installed on the host: packages are fetched with ``apt-get
download`` and unpacked with ``dpkg-deb`` into the cache.  Every step leaves a
marker so a second call is a no-op.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
from typing import Optional

from .config import KERNELS, SERIES, SERIES_BY_NAME, LabError, LabUnavailable, cache_dir, log, run

FLAVOUR = "amd64"
ARCHIVE = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _private_apt() -> pathlib.Path:
    """An APT configuration of the lab's own for the series outside the
    machine's suites (bullseye, trixie-backports ...): its own sources list,
    lists and cache under the lab cache; the machine's sources stay as they are."""
    base = cache_dir() / "apt"
    suites = sorted({s for ser in SERIES for s in ser.suites})
    lines = [f"deb [signed-by={KEYRING}] {SECURITY if s.endswith('-security') else ARCHIVE} {s} main"
             for s in suites]
    for d in ("lists/partial", "cache/archives/partial"):
        (base / d).mkdir(parents=True, exist_ok=True)
    sources = base / "sources.list"
    text = "\n".join(lines) + "\n"
    if not sources.exists() or sources.read_text() != text:
        sources.write_text(text)
        for f in (base / "lists").glob("*_Packages*"):
            f.unlink()  # a changed list of suites: update again
    conf = base / "apt.conf"
    conf.write_text(
        f'Dir::Etc::sourcelist "{sources}";\nDir::Etc::sourceparts "-";\n'
        f'Dir::State::lists "{base}/lists";\nDir::Cache "{base}/cache";\n'
        'APT::Sandbox::User "root";\n')
    return conf


def apt_env(series: str) -> Optional[dict[str, str]]:
    """The environment apt runs in for ``series`` (None: the machine's own)."""
    if not SERIES_BY_NAME[series].suites:
        return None
    env = dict(os.environ)
    env["APT_CONFIG"] = str(_private_apt())
    if not any((cache_dir() / "apt" / "lists").glob("*_Packages*")):
        log("apt-get update of the lab's private sources (" + ", ".join(SERIES_BY_NAME[series].suites) + ")")
        run(["apt-get", "update", "-q"], timeout=600, env=env)
    return env


@dataclasses.dataclass(frozen=True)
class KernelPackages:
    series: str            # "6.1" / "6.12"
    release: str           # uname -r, e.g. "6.1.0-56-amd64"
    images: tuple[str, ...]  # packages holding the vmlinuz and modules (trixie splits them)
    dbg: str               # package holding usr/lib/debug/boot/vmlinux-<release>
    headers: tuple[str, ...]  # headers + common + kbuild packages


@dataclasses.dataclass(frozen=True)
class KernelFiles:
    series: str
    release: str
    root: pathlib.Path      # unpacked image + headers (lib/modules, usr/src, usr/lib)
    vmlinuz: pathlib.Path
    vmlinux: pathlib.Path   # -dbg vmlinux with DWARF
    headers_dir: pathlib.Path  # pass to make -C
    modules_dir: pathlib.Path  # root/lib/modules/<release>


def _natural_key(s: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", s) if p]


def _apt_pkgnames(prefix: str, env: Optional[dict[str, str]]) -> list[str]:
    cp = run(["apt-cache", "pkgnames", prefix], timeout=120, check=False, env=env)
    return cp.stdout.split() if cp.returncode == 0 else []


def _apt_has_candidate(pkg: str, env: Optional[dict[str, str]]) -> bool:
    cp = run(["apt-cache", "show", "--no-all-versions", pkg], timeout=60, check=False, env=env)
    return cp.returncode == 0 and "Package:" in cp.stdout


def _apt_depends(pkg: str, env: Optional[dict[str, str]]) -> list[str]:
    cp = run(["apt-cache", "depends", "--no-recommends", "--no-suggests", pkg], timeout=60, env=env)
    out = []
    for line in cp.stdout.splitlines():
        m = re.match(r"\s*\|?(?:Pre)?Depends:\s+(\S+)", line)
        if m:
            out.append(m.group(1))
    return out


def resolve(series: str, _updated: bool = False) -> KernelPackages:
    """Find the newest ``linux-image-<series>...-amd64`` whose -dbg and headers exist."""
    if series not in KERNELS:
        raise LabError(f"unknown kernel series {series!r} (known: {', '.join(KERNELS)})")
    env = apt_env(series)
    # Release names look like 6.1.0-56-amd64 or 6.12.117+deb12-amd64; the
    # series must be followed by '.' or '-' so that 6.1 does not match 6.12.
    pat = re.compile(rf"^linux-image-({re.escape(series)}[.-][0-9][^ ]*-{FLAVOUR})-dbg$")
    releases = sorted({m.group(1) for n in _apt_pkgnames(f"linux-image-{series}", env)
                       if (m := pat.match(n)) and not re.search(r"-(cloud|rt)-", m.group(1))},
                      key=_natural_key, reverse=True)
    for rel in releases:
        # trixie splits the image: linux-binary-unsigned-REL (the vmlinuz) and
        # linux-modules-REL; before, one linux-image-REL[-unsigned] held both.
        split = (f"linux-binary-unsigned-{rel}", f"linux-modules-{rel}")
        images: Optional[tuple[str, ...]] = next(
            ((p,) for p in (f"linux-image-{rel}-unsigned",) if _apt_has_candidate(p, env)), None)
        if images is None and all(_apt_has_candidate(p, env) for p in split):
            images = split
        if images is None and _apt_has_candidate(f"linux-image-{rel}", env) and \
                not _apt_has_candidate(split[1], env):
            images = (f"linux-image-{rel}",)
        dbg = f"linux-image-{rel}-dbg"
        hdr = f"linux-headers-{rel}"
        if images is None or not _apt_has_candidate(dbg, env) or not _apt_has_candidate(hdr, env):
            continue
        deps = [d for d in _apt_depends(hdr, env)
                if d.startswith(("linux-headers-", "linux-kbuild-")) and d != hdr]
        return KernelPackages(series, rel, images, dbg, (hdr, *dict.fromkeys(deps)))
    if not _updated:
        # Only refresh the package lists when apt-cache knows no candidate at all.
        log("apt-cache found no matching kernel; running apt-get update")
        run(["apt-get", "update"], timeout=600, env=env)
        return resolve(series, _updated=True)
    raise LabUnavailable(f"apt has no linux-image-{series}*-{FLAVOUR} with -dbg and headers")


def _download(pkg: str, dest: pathlib.Path, env: Optional[dict[str, str]] = None) -> pathlib.Path:
    """apt-get download into dest (cached by package name)."""
    dest.mkdir(parents=True, exist_ok=True)
    have = sorted(dest.glob(f"{pkg}_*.deb"))
    if have:
        return have[-1]
    log(f"downloading {pkg}")
    tmp = dest / f".dl-{pkg}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # The _apt sandbox user cannot write to root's cache: download as root.
    try:
        run(["apt-get", "download", "-o", "APT::Sandbox::User=root", pkg], cwd=tmp, timeout=1800, env=env)
    except LabError as exc:
        # No mirror reachable (offline machine): the lab cannot run here.
        raise LabUnavailable(f"cannot download {pkg}: {exc}") from exc
    debs = list(tmp.glob("*.deb"))
    if len(debs) != 1:
        raise LabError(f"apt-get download {pkg} produced {debs}")
    final = dest / debs[0].name
    os.replace(debs[0], final)
    shutil.rmtree(tmp, ignore_errors=True)
    return final


def _extract_all(deb: pathlib.Path, root: pathlib.Path) -> None:
    marker = root / f".extracted-{deb.name}"
    if marker.exists():
        return
    log(f"unpacking {deb.name}")
    root.mkdir(parents=True, exist_ok=True)
    run(["dpkg-deb", "-x", str(deb), str(root)], timeout=600)
    marker.touch()


def _extract_vmlinux(deb: pathlib.Path, release: str, out: pathlib.Path) -> None:
    """Pull only the vmlinux out of the (1 GB) -dbg package.  trixie's
    ``usr/lib/debug/boot/vmlinux-REL`` is a symlink to
    ``usr/lib/debug/lib/modules/REL/vmlinux``: take whichever is a file."""
    members = (f"./usr/lib/debug/boot/vmlinux-{release}", f"./usr/lib/debug/lib/modules/{release}/vmlinux")
    tmpdir = out.parent / ".vmlinux-tmp"
    shutil.rmtree(tmpdir, ignore_errors=True)
    tmpdir.mkdir(parents=True)
    log(f"extracting vmlinux-{release} from {deb.name}")
    fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        # tar exits 2 when one of the members is absent; the file decides.
        tar = subprocess.run(["tar", "-x", "-C", str(tmpdir), *members], stdin=fsys.stdout,
                             capture_output=True, text=True, timeout=900)
    finally:
        assert fsys.stdout is not None
        fsys.stdout.close()
        try:
            fsys.wait(timeout=60)
        except subprocess.TimeoutExpired:
            fsys.kill()
    got = next((tmpdir / m for m in members if (tmpdir / m).is_file() and not (tmpdir / m).is_symlink()), None)
    if got is None:
        raise LabError(f"could not extract the vmlinux from {deb.name}: {tar.stderr.strip()[-300:]}")
    os.replace(got, out)
    shutil.rmtree(tmpdir, ignore_errors=True)


def kernel_dir(release: str) -> pathlib.Path:
    return cache_dir() / "kernels" / release


def fetch(series: str, *, keep_dbg_deb: bool = False) -> KernelFiles:
    """Download and unpack everything for one kernel series; idempotent."""
    # Fast path: a previous fetch recorded what it resolved.  We still re-resolve
    # when apt is available so a security update is picked up, but reuse the
    # record if apt-cache says nothing new (or is slow/unavailable).
    pkgs = resolve(series)
    kdir = kernel_dir(pkgs.release)
    root = kdir / "root"
    debs = cache_dir() / "debs"
    vmlinux = kdir / f"vmlinux-{pkgs.release}"
    done = kdir / ".fetched"
    env = apt_env(series)
    if not done.exists():
        for pkg in (*pkgs.images, *pkgs.headers):
            _extract_all(_download(pkg, debs, env), root)
        # usrmerged packages (trixie) have no top-level lib/: depmod and the
        # initramfs builder look in ROOT/lib/modules.
        if not (root / "lib").exists() and (root / "usr" / "lib" / "modules").is_dir():
            (root / "lib").symlink_to("usr/lib")
        if not vmlinux.exists():
            dbg_deb = _download(pkgs.dbg, debs, env)
            _extract_vmlinux(dbg_deb, pkgs.release, vmlinux)
            if not keep_dbg_deb:
                dbg_deb.unlink()  # 0.9-1 GB; the vmlinux is all we need
        # The package ships no modules.dep; generate it so modprobe-style
        # dependency resolution works for the initramfs builder.
        run(["depmod", "-b", str(root), pkgs.release], timeout=300)
        (kdir / "packages.json").write_text(json.dumps(dataclasses.asdict(pkgs), indent=1))
        done.touch()
    files = KernelFiles(
        series=series,
        release=pkgs.release,
        root=root,
        vmlinuz=next((p for p in (root / "boot" / f"vmlinuz-{pkgs.release}",
                                  root / "usr" / "lib" / "modules" / pkgs.release / "vmlinuz.unsigned",
                                  root / "usr" / "lib" / "modules" / pkgs.release / "vmlinuz")
                      if p.exists()), root / "boot" / f"vmlinuz-{pkgs.release}"),
        vmlinux=vmlinux,
        headers_dir=root / "usr" / "src" / f"linux-headers-{pkgs.release}",
        modules_dir=root / "lib" / "modules" / pkgs.release,
    )
    for p in (files.vmlinuz, files.vmlinux, files.headers_dir, files.modules_dir):
        if not p.exists():
            done.unlink(missing_ok=True)
            raise LabError(f"fetch of {series} incomplete: {p} missing (rerun to repair)")
    return files
