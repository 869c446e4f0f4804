"""Vmcores of a running guest, captured together with the module's JSON and
/proc/vmallocinfo at (as near as possible) the same moment."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import struct
import subprocess
import time
from typing import Any, Optional

from .config import SERIES_BY_NAME, LabError, die_with_parent, log
from .guest import Guest

# __START_KERNEL_map + the default physical start: _text without KASLR.
TEXT_NO_KASLR = 0xFFFFFFFF81000000
MAKEDUMPFILE_TIMEOUT_S = 600


class FilterJob:
    """makedumpfile -c and -E running in the background (2 processes).

    They start right after the ELF dump so they overlap with the live tests;
    whoever needs a filtered file calls wait().  makedumpfile reads the
    dump's VMCOREINFO note (QEMU's vmcoreinfo device), as it does in a kdump
    kernel; given ``-x vmlinux`` it first parsed the vmlinux's DWARF: 47 s
    instead of 1.5 s on 6.12, the same bytes out on all four lab kernels."""

    def __init__(self, elf: pathlib.Path, level: int, kdump: pathlib.Path, elf_filtered: pathlib.Path) -> None:
        self.outputs = (kdump, elf_filtered)
        self.t0 = time.monotonic()
        self.seconds: Optional[float] = None
        self.error: Optional[str] = None
        self.procs: list[tuple[pathlib.Path, subprocess.Popen, pathlib.Path]] = []
        for out, mode in ((kdump, "-c"), (elf_filtered, "-E")):
            out.unlink(missing_ok=True)
            logf = out.with_name(out.name + ".log")
            with open(logf, "wb") as lf:
                p = subprocess.Popen(["makedumpfile", mode, "-d", str(level), str(elf), str(out)], stdin=subprocess.DEVNULL,
                                     stdout=lf, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent)
            self.procs.append((out, p, logf))

    def wait(self, timeout: float = MAKEDUMPFILE_TIMEOUT_S) -> None:
        if self.seconds is None and self.error is None:
            deadline = self.t0 + timeout
            errors = []
            for out, p, logf in self.procs:
                try:
                    p.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.kill()
                    self.error = f"makedumpfile timed out after {timeout:.0f}s"
                    break
                if p.returncode != 0 or not out.exists():
                    lines = logf.read_text(errors="replace").replace("\r", "\n").strip().splitlines()
                    errors.append(f"{out.name}: rc={p.returncode}: {' | '.join(lines[-3:])}")
            if self.error is None and errors:
                self.error = "makedumpfile failed: " + "; ".join(errors)
            if self.error is None:
                self.seconds = time.monotonic() - self.t0
                log(f"makedumpfile (-c, -E) done in {self.seconds:.1f}s")
        if self.error:
            raise LabError(self.error)

    def kill(self) -> None:
        for _, p, _ in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 9)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass


@dataclasses.dataclass
class Snapshot:
    """Everything captured at the dump moment (see tests/lab/README.md)."""
    dir: pathlib.Path
    elf: pathlib.Path            # QEMU ELF dump, program headers moved after the ELF header
    kdump_path: pathlib.Path     # makedumpfile -c -d N (compressed kdump)
    elf_filtered_path: pathlib.Path  # makedumpfile -E -d N (ELF)
    dump_level: int
    module: Optional[dict]       # parsed areas.json (None if the module is not loaded)
    module_json_text: Optional[str]
    vmallocinfo: str
    kallsyms_text: int           # _text from /proc/kallsyms
    kaslr_offset: int
    iomem: str
    symbols: dict[str, int]      # a few kallsyms values (vmalloc_base, ...)
    variables: dict[str, int]    # their 8-byte values, read via /proc/kcore
    cpus_online: str
    captured_at: float
    #: {pid: /proc/PID/maps text} of every process at the dump moment
    proc_maps: dict = dataclasses.field(default_factory=dict)
    filter_job: Optional[FilterJob] = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def kdump(self) -> pathlib.Path:
        """The compressed kdump (waits for makedumpfile if still running)."""
        self.wait_filtered()
        return self.kdump_path

    @property
    def elf_filtered(self) -> pathlib.Path:
        """The makedumpfile -E ELF (waits for makedumpfile if still running)."""
        self.wait_filtered()
        return self.elf_filtered_path

    def wait_filtered(self) -> None:
        if self.filter_job is not None:
            self.filter_job.wait()

    def close(self) -> None:
        """Stop a still-running makedumpfile (fixture teardown)."""
        if self.filter_job is not None:
            self.filter_job.kill()

    @property
    def paths(self) -> dict[str, pathlib.Path]:
        return {"elf": self.elf, "kdump": self.kdump, "elf_filtered": self.elf_filtered}


def fix_phdrs(path: pathlib.Path) -> None:
    """Make the ELF's program headers follow the ELF header (makedumpfile needs it).

    QEMU 7.2 writes ehdr | shdrs | phdrs | notes | data.  Moving the phdrs down
    to offset 64 and dropping the section headers (only the shstrtab, useless
    to a core reader) keeps every segment offset valid, so it is done in place
    when the phdrs fit before the first data; otherwise the file is rewritten.
    """
    with open(path, "r+b") as f:
        eh = bytearray(f.read(64))
        if eh[:4] != b"\x7fELF" or eh[4] != 2 or eh[5] != 1:
            raise LabError(f"{path}: not a little-endian ELF64 file")
        phoff, shoff = struct.unpack_from("<QQ", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        if phoff == 64:
            return
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
        offsets = [struct.unpack_from("<Q", ph, i * phentsize + 8)[0] for i in range(phnum)]
        first_data = min((o for o in offsets if o), default=0)
        if 64 + len(ph) <= first_data:
            struct.pack_into("<Q", eh, 32, 64)             # e_phoff
            struct.pack_into("<Q", eh, 40, 0)              # e_shoff
            struct.pack_into("<H", eh, 52, 64)             # e_ehsize (QEMU writes 8)
            struct.pack_into("<HHH", eh, 58, 0, 0, 0)      # e_shentsize, e_shnum, e_shstrndx
            f.seek(0)
            f.write(bytes(eh) + ph)
            f.write(b"\0" * (first_data - 64 - len(ph)))   # clear the stale header bytes
            return
    _rewrite(path, bytes(eh), ph, phentsize, phnum)


def _rewrite(path: pathlib.Path, eh: bytes, ph: bytes, phentsize: int, phnum: int) -> None:
    tmp = path.with_suffix(".rewrite")
    data_start = (64 + len(ph) + 4095) & ~4095
    new_ph = bytearray(ph)
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        dst.seek(data_start)
        for i in range(phnum):
            off, = struct.unpack_from("<Q", ph, i * phentsize + 8)
            filesz, = struct.unpack_from("<Q", ph, i * phentsize + 32)
            struct.pack_into("<Q", new_ph, i * phentsize + 8, dst.tell())
            src.seek(off)
            remaining = filesz
            while remaining:
                chunk = src.read(min(remaining, 16 << 20))
                if not chunk:
                    raise LabError(f"{path}: truncated segment {i}")
                dst.write(chunk)
                remaining -= len(chunk)
        neh = bytearray(eh)
        struct.pack_into("<Q", neh, 32, 64)
        struct.pack_into("<Q", neh, 40, 0)
        struct.pack_into("<H", neh, 52, 64)
        struct.pack_into("<HHH", neh, 58, 0, 0, 0)
        dst.seek(0)
        dst.write(bytes(neh) + bytes(new_ph))
    os.replace(tmp, path)


def take(guest: Guest, outdir: pathlib.Path, *,
         free_lazy: bool = True, filtered: bool = True, background: bool = True) -> Snapshot:
    """Capture vmallocinfo + module JSON, dump immediately, then filter.

    The agent reads everything in-process (no fork between the capture and
    the dump: each fork would allocate a vmalloc'd stack)."""
    outdir.mkdir(parents=True, exist_ok=True)
    cap = guest.request("capture", 120, free_lazy=free_lazy)
    elf = outdir / "vmcore.elf"
    t0 = time.monotonic()
    guest.dump_elf(elf)
    # The agent's own maps at the dump moment are its idle ones (issue 13).
    idle = guest.request("idle_maps", 60)
    if str(idle["pid"]) in (cap.get("proc_maps") or {}):
        cap["proc_maps"][str(idle["pid"])] = idle["maps"]
    log(f"{guest.release}: ELF dump {elf.stat().st_size >> 20} MiB in {time.monotonic() - t0:.1f}s")
    fix_phdrs(elf)
    module_text = cap.get("module_json")
    (outdir / "vmallocinfo.txt").write_text(cap["vmallocinfo"])
    (outdir / "iomem.txt").write_text(cap["iomem"])
    if module_text is not None:
        (outdir / "module.json").write_text(module_text)
    text = cap["symbols"].get("_text")
    if text is None:
        raise LabError("no _text in the guest's /proc/kallsyms (kptr_restrict?)")
    level = SERIES_BY_NAME[guest.kernel].dump_level if guest.kernel in SERIES_BY_NAME else 23
    snap = Snapshot(
        dir=outdir, elf=elf, kdump_path=outdir / "vmcore.kdump",
        elf_filtered_path=outdir / "vmcore-filtered.elf", dump_level=level,
        module=json.loads(module_text) if module_text else None,
        module_json_text=module_text, vmallocinfo=cap["vmallocinfo"],
        kallsyms_text=text, kaslr_offset=text - TEXT_NO_KASLR, iomem=cap["iomem"],
        symbols=cap["symbols"], variables=cap["variables"], cpus_online=cap["cpus_online"],
        captured_at=cap["captured_at"], proc_maps=cap.get("proc_maps") or {},
    )
    (outdir / "proc_maps.json").write_text(json.dumps(snap.proc_maps))
    meta: dict[str, Any] = {f.name: getattr(snap, f.name) for f in dataclasses.fields(snap)
                            if f.name not in ("module", "module_json_text", "vmallocinfo", "iomem",
                                              "filter_job", "proc_maps")}
    (outdir / "snapshot.json").write_text(json.dumps(meta, indent=1, default=str))
    if filtered:
        snap.filter_job = FilterJob(elf, level, snap.kdump_path, snap.elf_filtered_path)
        if not background:
            snap.wait_filtered()
    return snap


def panic_dump(guest: Guest, outdir: pathlib.Path) -> dict[str, pathlib.Path]:
    """The three dumps of a guest spinning in panic() (Guest.panic): QEMU's
    ELF, then makedumpfile's kdump and ELF of it.  No capture: the agent
    died with the kernel."""
    outdir.mkdir(parents=True, exist_ok=True)
    elf = outdir / "vmcore.elf"
    guest.dump_elf(elf)
    fix_phdrs(elf)
    level = SERIES_BY_NAME[guest.kernel].dump_level if guest.kernel in SERIES_BY_NAME else 23
    job = FilterJob(elf, level, outdir / "vmcore.kdump", outdir / "vmcore-filtered.elf")
    job.wait()  # raises LabError when makedumpfile fails
    return {"elf": elf, "kdump": outdir / "vmcore.kdump", "elf_filtered": outdir / "vmcore-filtered.elf"}
