"""
ELF cores
---------

/proc/kcore and ELF vmcores, parsed with pyelftools.  Every header, program
header and note is checked against the file before it is used, so a damaged
or hostile file ends in one :class:`~kcoretool.errors.CoreFormatError`
naming the part and offset, never in a traceback or a huge allocation.

/proc/kcore is about 128 TiB and sparse: it is read with ``pread`` at the
offsets the program headers give, never mapped or read whole.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections import Counter
from typing import IO, List, Optional, Tuple

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from kcoretool.errors import AddressError, CoreFormatError, KcoreToolError
from kcoretool.source.core import (
    KCORE_PATH,
    Core,
    NoteInfo,
    PrPsInfo,
    PrStatus,
    Segment,
)
from kcoretool.source.vmcoreinfo import MAX_VMCOREINFO_SIZE, VmcoreInfo
from kcoretool.x86_64 import START_KERNEL_MAP, VSYSCALL_ADDR

__all__ = ("ElfCore", "classify_kcore_segments", "classify_vmcore_segments")

NO_ADDR = 0xFFFFFFFFFFFFFFFF  # the kernel's (elf_addr_t)-1 for "no physical address"

NT_PRSTATUS = 1
NT_PRPSINFO = 3
NT_TASKSTRUCT = 4
# Largest note descriptor we accept: a task_struct copy is ~10 KiB, a
# prstatus a few hundred bytes; anything near this is a damaged header.
MAX_NOTE_SIZE = 1 << 24
MAX_PHNUM = 1 << 16
PHDR_SIZE = 56

VMCOREINFO_SYSFS = "/sys/kernel/vmcoreinfo"


class ElfCore(Core):
    def __init__(self, f: IO[bytes], path: str, owned: bool = True) -> None:
        super().__init__(path)
        self._f = f
        self._owned = owned
        try:
            self._fd: Optional[int] = f.fileno()
        except (AttributeError, OSError, ValueError):  # BytesIO and friends
            self._fd = None
        # A regular file is mapped: a page read is then a slice, not a
        # syscall.  /proc/kcore is never mapped (and cannot be).
        self._map: Optional[mmap.mmap] = None
        if self._fd is not None:
            try:
                st = os.fstat(self._fd)
                if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                    self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                self._map = None
        try:
            self._parse()
        except KcoreToolError:
            raise
        except (ELFError, struct.error, ValueError, OverflowError, EOFError) as e:
            # construct's StreamError and friends derive from these.
            raise CoreFormatError(f"{path}: damaged ELF headers ({e})") from None
        except Exception as e:  # construct raises its own hierarchy
            if type(e).__module__.startswith("elftools"):
                raise CoreFormatError(f"{path}: damaged ELF headers ({e})") from None
            raise

    # -- parsing ------------------------------------------------------------

    def _parse(self) -> None:
        path, f = self.path, self._f
        f.seek(0)
        ident = f.read(64)
        if len(ident) < 64:
            raise CoreFormatError(
                f"{path}: ELF header truncated ({len(ident)} of 64 bytes); the file is cut short"
            )
        if ident[4] != 2:
            bits = {1: "32-bit"}.get(ident[4], f"class {ident[4]}")
            raise CoreFormatError(
                f"{path}: {bits} ELF is not supported; kcoretool reads 64-bit x86_64 cores"
            )
        if ident[5] != 1:
            order = {2: "big-endian"}.get(ident[5], f"data encoding {ident[5]}")
            raise CoreFormatError(
                f"{path}: {order} ELF is not supported; kcoretool reads little-endian x86_64 cores"
            )
        f.seek(0)
        elf = ELFFile(f)
        self._elf = elf
        self._size = elf.stream_len
        e_type = elf["e_type"]
        if e_type != "ET_CORE":
            raise CoreFormatError(
                f"{path}: is an ELF {e_type} file, not a core (ET_CORE); "
                f"give the path of a vmcore or {KCORE_PATH}"
            )
        if elf["e_machine"] != "EM_X86_64":
            raise CoreFormatError(
                f"{path}: is a core for {elf['e_machine']}; only x86_64 (EM_X86_64) is supported"
            )
        phnum = self._phnum()
        if elf["e_phentsize"] != PHDR_SIZE:
            raise CoreFormatError(
                f"{path}: e_phentsize is {elf['e_phentsize']}, not {PHDR_SIZE}; the ELF header is damaged"
            )
        phoff = elf["e_phoff"]
        if phoff + phnum * PHDR_SIZE > self._size:
            raise CoreFormatError(
                f"{path}: program headers ({phnum} at offset {phoff:#x}) run past the end "
                f"of the file ({self._size:#x} bytes); the file is truncated"
            )
        raw = []
        note_phdrs = []
        for i in range(phnum):
            h = elf.get_segment(i).header
            if h["p_type"] == "PT_LOAD":
                self._check_extent(f"PT_LOAD #{i}", h["p_offset"], h["p_filesz"])
                if h["p_filesz"] > h["p_memsz"]:
                    raise CoreFormatError(
                        f"{path}: PT_LOAD #{i} has p_filesz {h['p_filesz']:#x} > "
                        f"p_memsz {h['p_memsz']:#x}; the program header is damaged"
                    )
                raw.append((i, h))
            elif h["p_type"] == "PT_NOTE":
                self._check_extent(f"PT_NOTE #{i}", h["p_offset"], h["p_filesz"])
                note_phdrs.append((i, h))
        if not raw:
            raise CoreFormatError(f"{path}: has no PT_LOAD segments; there is no memory in it")
        vmcoreinfo_text = None
        for i, h in note_phdrs:
            text = self._parse_notes(i, h["p_offset"], h["p_filesz"])
            if text is not None and vmcoreinfo_text is None:
                vmcoreinfo_text = text
        self.kind = "kcore" if self.notes.taskstruct_size is not None else "elf-vmcore"
        if vmcoreinfo_text is not None:
            self.vmcoreinfo = VmcoreInfo(vmcoreinfo_text, where=path)
            self.vmcoreinfo_source = "note"
        if self.kind == "kcore":
            self.segments = classify_kcore_segments(raw, self.vmcoreinfo)
            self._check_overlap(physical=False)
            if self.vmcoreinfo is None and self.is_live:
                self._load_sysfs_vmcoreinfo()
        else:
            self.segments = classify_vmcore_segments(raw)
            self._check_overlap(physical=True)

    def _phnum(self) -> int:
        elf = self._elf
        e_phnum = elf["e_phnum"]
        if e_phnum == 0:
            raise CoreFormatError(f"{self.path}: has no program headers (e_phnum is 0)")
        if e_phnum == 0xFFFF:
            # PN_XNUM: the real count is in section 0's sh_info.
            if elf["e_shoff"] == 0 or elf["e_shoff"] + 64 > self._size:
                raise CoreFormatError(
                    f"{self.path}: e_phnum is PN_XNUM but there is no section 0 "
                    "holding the real count; the ELF header is damaged"
                )
            phnum = elf.get_section(0)["sh_info"]
        else:
            phnum = e_phnum
        if not 0 < phnum <= MAX_PHNUM:
            raise CoreFormatError(f"{self.path}: absurd program header count {phnum}")
        return phnum

    def _check_extent(self, what: str, offset: int, size: int) -> None:
        if offset + size > self._size:
            raise CoreFormatError(
                f"{self.path}: {what} at offset {offset:#x} size {size:#x} runs past the end "
                f"of the file ({self._size:#x} bytes); the file is truncated or damaged"
            )

    def _parse_notes(self, phdr_index: int, offset: int, size: int) -> Optional[bytes]:
        """Walk one PT_NOTE, checking every header against the segment.
        Returns the VMCOREINFO descriptor if there is one."""
        nhdr = self._elf.structs.Elf_Nhdr
        end = offset + size
        pos = offset
        vmcoreinfo = None
        while pos + 12 <= end:
            h = nhdr.parse(self._pread(pos, 12))
            namesz, descsz = h["n_namesz"], h["n_descsz"]
            name_off = pos + 12
            desc_off = name_off + _align4(namesz)
            note_end = desc_off + _align4(descsz)
            if namesz > MAX_NOTE_SIZE or descsz > MAX_NOTE_SIZE or note_end > end:
                if namesz == 0 and descsz == 0:
                    break  # zero padding at the end of the segment
                raise CoreFormatError(
                    f"{self.path}: note at offset {pos:#x} (PT_NOTE #{phdr_index}) claims "
                    f"name {namesz} and descriptor {descsz} bytes but only {end - name_off} "
                    "remain; the notes are damaged or truncated"
                )
            name = self._pread(name_off, namesz).split(b"\0", 1)[0].decode("ascii", "replace")
            ntype = h["n_type"]
            if not isinstance(ntype, int):  # pyelftools names the types it knows
                ntype = _NOTE_TYPES.get(ntype, -1)
            self.notes.all.append(NoteInfo(name, ntype, descsz))
            if name == "CORE":
                desc = self._pread(desc_off, min(descsz, 4096))
                if ntype == NT_PRSTATUS and len(desc) >= 36:
                    cursig = int.from_bytes(desc[12:14], "little")
                    pid = int.from_bytes(desc[32:36], "little", signed=True)
                    self.notes.prstatus.append(PrStatus(pid=pid, cursig=cursig))
                elif ntype == NT_PRPSINFO and len(desc) >= self._elf.structs.Elf_Prpsinfo.sizeof():
                    p = self._elf.structs.Elf_Prpsinfo.parse(desc)
                    self.notes.prpsinfo = PrPsInfo(
                        state=_cstr(p["pr_sname"]),
                        fname=_cstr(p["pr_fname"]),
                        psargs=_cstr(p["pr_psargs"]),
                        pid=p["pr_pid"],
                    )
                elif ntype == NT_TASKSTRUCT:
                    self.notes.taskstruct_size = descsz
            elif name == "VMCOREINFO" and vmcoreinfo is None:
                if descsz > MAX_VMCOREINFO_SIZE:
                    raise CoreFormatError(
                        f"{self.path}: VMCOREINFO note at offset {pos:#x} is {descsz} bytes; "
                        "the note is damaged"
                    )
                self.notes.vmcoreinfo_size = descsz
                vmcoreinfo = self._pread(desc_off, descsz)
            pos = note_end
        return vmcoreinfo

    def _check_overlap(self, physical: bool) -> None:
        ranges: List[Tuple[int, int, Segment]] = []
        for seg in self.segments:
            start = seg.paddr if physical else seg.vaddr
            # kdump's kernel-text PT_LOAD aliases RAM physically, by design.
            if start is None or seg.memsz == 0 or (physical and seg.kind == "text"):
                continue
            ranges.append((start, start + seg.memsz, seg))
        ranges.sort(key=lambda r: r[0])
        for (s1, e1, a), (s2, e2, b) in zip(ranges, ranges[1:]):
            if s2 < e1:
                space = "physical" if physical else "virtual"
                raise CoreFormatError(
                    f"{self.path}: PT_LOAD #{a.index} and #{b.index} overlap at {space} "
                    f"{s2:#x}-{min(e1, e2):#x}; the program headers are damaged"
                )

    @property
    def is_live(self) -> bool:
        return self.kind == "kcore" and os.path.abspath(self.path) == KCORE_PATH

    @property
    def cpus(self) -> Optional[int]:
        if self.kind == "kcore":
            # kcore's single NT_PRSTATUS is a zeroed placeholder; a live
            # kernel's CPUs are the host's.
            return _online_cpus() if self.is_live else None
        return super().cpus

    def _load_sysfs_vmcoreinfo(self) -> None:
        """Kernels before 4.19 have no VMCOREINFO note in kcore; the sysfs
        file gives the note's physical address and size instead."""
        try:
            with open(VMCOREINFO_SYSFS) as fh:
                addr_s, size_s = fh.read().split()[:2]
            addr, size = int(addr_s, 16), int(size_s, 16)
            blob = self.read(addr, min(size, MAX_VMCOREINFO_SIZE), physical=True)
        except (OSError, ValueError, KcoreToolError):
            return
        namesz, descsz = struct.unpack_from("<II", blob)
        desc_off = 12 + _align4(namesz)
        if blob[12 : 12 + namesz].rstrip(b"\0") == b"VMCOREINFO" and desc_off + descsz <= len(blob):
            self.vmcoreinfo = VmcoreInfo(blob[desc_off : desc_off + descsz], where=self.path)
            self.vmcoreinfo_source = VMCOREINFO_SYSFS

    # -- reads --------------------------------------------------------------

    def _pread(self, offset: int, size: int) -> bytes:
        if self._map is not None:
            return self._map[offset : offset + size]
        if self._fd is None:
            self._f.seek(offset)
            return self._f.read(size)
        data = os.pread(self._fd, size, offset)
        if len(data) == size or not data:
            return data
        chunks = [data]
        offset += len(data)
        size -= len(data)
        while size > 0:
            data = os.pread(self._fd, size, offset)
            if not data:
                break
            chunks.append(data)
            offset += len(data)
            size -= len(data)
        return b"".join(chunks)

    def _read_file(self, offset: int, size: int, addr: int, physical: bool) -> bytes:
        try:
            data = self._pread(offset, size)
        except OSError as e:
            space = "physical" if physical else "virtual"
            raise AddressError(
                f"{self.path}: reading {space} address {addr:#x} failed: {e.strerror or e}", addr
            ) from None
        if len(data) != size:
            raise CoreFormatError(
                f"{self.path}: file ends at offset {offset + len(data):#x} inside a segment; "
                "the file is truncated"
            )
        return data

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._owned:
            self._f.close()


_NOTE_TYPES = {"NT_PRSTATUS": 1, "NT_FPREGSET": 2, "NT_PRPSINFO": 3, "NT_TASKSTRUCT": 4,
               "NT_AUXV": 6, "NT_SIGINFO": 0x53494749, "NT_FILE": 0x46494C45,
               "NT_PRXFPREG": 0x46E62B7F, "NT_X86_XSTATE": 0x202,
               "NT_GNU_ABI_TAG": 1, "NT_GNU_HWCAP": 2, "NT_GNU_BUILD_ID": 3,
               "NT_GNU_GOLD_VERSION": 4, "NT_GNU_PROPERTY_TYPE_0": 5}


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _cstr(value: object) -> str:
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(value).split("\0", 1)[0]


def _online_cpus() -> Optional[int]:
    try:
        with open("/sys/devices/system/cpu/online") as fh:
            text = fh.read().strip()
    except OSError:
        return os.cpu_count()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def classify_kcore_segments(raw: list, vmcoreinfo: Optional[VmcoreInfo]) -> List[Segment]:
    """Name each kcore PT_LOAD after the ``enum kcore_type`` entry it came from.

    fs/proc/kcore.c writes p_paddr = __pa() for KCORE_RAM and KCORE_TEXT and
    (elf_addr_t)-1 for everything else (since Omar Sandoval's 2018 /proc/kcore
    series, in v4.19; earlier kernels wrote 0 everywhere).  The
    list order is fixed by the code that fills it: KCORE_USER (mem_init), then
    KCORE_TEXT, the vmalloc range and the modules range (proc_kcore_init),
    then for each RAM range its KCORE_RAM entry followed by its KCORE_VMEMMAP
    entries (kclist_add_private).  KASLR moves every address, so nothing here
    compares against a boot-specific constant.
    """
    all_zero = all(h["p_paddr"] == 0 for _, h in raw)
    vmalloc_start = None
    if vmcoreinfo is not None:
        try:
            # 6.9+ exports it: 55c49fee57af ("mm/vmalloc: remove vmap_area_list") (in v6.9)
            vmalloc_start = vmcoreinfo.number("VMALLOC_START")
        except KcoreToolError:
            vmalloc_start = None
    # The direct map is the one vaddr - paddr shared by RAM entries.
    deltas = Counter(
        (h["p_vaddr"] - h["p_paddr"]) & NO_ADDR
        for _, h in raw
        if h["p_paddr"] not in (NO_ADDR,) and not all_zero and h["p_vaddr"] < START_KERNEL_MAP
    )
    direct_delta = deltas.most_common(1)[0][0] if deltas else None
    segments: List[Segment] = []
    seen_ram = False
    for i, h in raw:
        vaddr, paddr = h["p_vaddr"], h["p_paddr"]
        has_paddr = paddr != NO_ADDR and not all_zero
        if has_paddr:
            if vaddr >= START_KERNEL_MAP:
                kind = "text"
            elif (vaddr - paddr) & NO_ADDR == direct_delta:
                kind = "ram"
                seen_ram = True
            else:
                kind = "remap"  # 4.19's KCORE_REMAP entry-trampoline aliases
        elif vaddr >= START_KERNEL_MAP:
            if vaddr <= VSYSCALL_ADDR < vaddr + max(h["p_memsz"], 1):
                kind = "user"
            elif all_zero and not any(s.kind == "text" for s in segments):
                kind = "text"  # pre-4.19: text comes before modules
            else:
                kind = "modules"
        elif vmalloc_start is not None:
            kind = "vmalloc" if vaddr == vmalloc_start else ("vmemmap" if seen_ram else "unknown")
        elif not seen_ram and not any(s.kind == "vmalloc" for s in segments):
            kind = "vmalloc"
        elif seen_ram:
            kind = "vmemmap"
        else:
            kind = "unknown"
        segments.append(
            Segment(
                index=i,
                kind=kind,
                vaddr=vaddr,
                paddr=paddr if has_paddr else None,
                filesz=h["p_filesz"],
                memsz=h["p_memsz"],
                offset=h["p_offset"],
                flags=h["p_flags"],
            )
        )
    return segments


def classify_vmcore_segments(raw: list) -> List[Segment]:
    """A vmcore's PT_LOADs are physical memory.  kdump (/proc/vmcore) and
    ``makedumpfile -E`` also give the kernel-text mapping and direct-map
    virtual addresses; QEMU's dump-guest-memory (paging=false) writes 0."""
    segments = []
    for i, h in raw:
        vaddr, paddr = h["p_vaddr"], h["p_paddr"]
        kind = "text" if vaddr >= START_KERNEL_MAP else "ram"
        meaningful_vaddr = vaddr != 0 and vaddr != paddr and vaddr != NO_ADDR
        segments.append(
            Segment(
                index=i,
                kind=kind,
                vaddr=vaddr if meaningful_vaddr else None,
                paddr=None if paddr == NO_ADDR else paddr,
                filesz=h["p_filesz"],
                memsz=h["p_memsz"],
                offset=h["p_offset"],
                flags=h["p_flags"],
            )
        )
    return segments
