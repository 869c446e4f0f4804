"""
Cores
-----

A *core* is whatever holds the memory kcoretool reads: the live
``/proc/kcore``, an ELF vmcore (kdump's /proc/vmcore copy, ``makedumpfile
-E``, QEMU ``dump-guest-memory``) or a kdump-compressed file.  This module
holds what all of them share: the plain data classes describing segments
and notes, and the address index that turns a read into file reads.
:func:`kcoretool.source.open.open_core` says what a file is and opens it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from kcoretool.errors import AddressError, KcoreToolError

if TYPE_CHECKING:
    from kcoretool.source.vmcoreinfo import VmcoreInfo

__all__ = (
    "Core",
    "NoteInfo",
    "Notes",
    "PrPsInfo",
    "PrStatus",
    "ReadResult",
    "Segment",
)

KCORE_PATH = "/proc/kcore"

# The kinds a segment can have.  kcore: one per ``enum kcore_type`` entry
# (the vmalloc type covers both the vmalloc and the modules range); vmcores
# only have RAM and, from kdump, the kernel text mapping.
SEGMENT_KINDS = ("text", "vmalloc", "modules", "ram", "vmemmap", "user", "remap", "unknown")


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD (or, for kdump files, one run of dumped pages)."""

    index: int  #: program header index (kdump: run number)
    kind: str  #: one of :data:`SEGMENT_KINDS`
    vaddr: Optional[int]  #: None where the producer wrote no usable address
    paddr: Optional[int]  #: None where the kernel writes -1
    filesz: int
    memsz: int
    offset: int
    flags: int = 0

    @property
    def vend(self) -> Optional[int]:
        return None if self.vaddr is None else self.vaddr + self.memsz

    @property
    def pend(self) -> Optional[int]:
        return None if self.paddr is None else self.paddr + self.memsz

    def to_dict(self) -> Dict[str, object]:
        return {
            "index": self.index,
            "kind": self.kind,
            "vaddr": self.vaddr,
            "paddr": self.paddr,
            "filesz": self.filesz,
            "memsz": self.memsz,
            "offset": self.offset,
        }


@dataclass(frozen=True)
class PrStatus:
    """An NT_PRSTATUS note: one per CPU in a vmcore (kcore has one, zeroed)."""

    pid: int
    cursig: int


@dataclass(frozen=True)
class PrPsInfo:
    """An NT_PRPSINFO note (kcore: ``vmlinux`` and the kernel command line)."""

    state: str
    fname: str
    psargs: str
    pid: int


@dataclass(frozen=True)
class NoteInfo:
    """Any note, described by name, type and descriptor size."""

    name: str
    type: int
    size: int


@dataclass
class Notes:
    prstatus: List[PrStatus] = field(default_factory=list)
    prpsinfo: Optional[PrPsInfo] = None
    #: Size of the NT_TASKSTRUCT note (kcore only: a copy of the reader's task_struct).
    taskstruct_size: Optional[int] = None
    vmcoreinfo_size: Optional[int] = None
    #: Every note in file order, including the ones above.
    all: List[NoteInfo] = field(default_factory=list)


@dataclass
class ReadResult:
    data: bytes
    #: (address, length) runs that the file does not hold and that read as
    #: zeros: bytes between a segment's p_filesz and p_memsz.
    zero_filled: List[Tuple[int, int]] = field(default_factory=list)
    #: (address, length) runs of a cut kdump file's pages that lie past its
    #: end, read as zeros
    truncated: List[Tuple[int, int]] = field(default_factory=list)


class Core:
    """Base class of the opened cores.  Subclasses fill in the attributes and
    :meth:`_read_file` / :meth:`_read_fallback`."""

    kind: str = "?"
    arch: str = "x86_64"

    def __init__(self, path: str) -> None:
        self.path = path
        self.segments: List[Segment] = []
        self.notes = Notes()
        self.vmcoreinfo: Optional[VmcoreInfo] = None
        #: Where the VMCOREINFO came from ("note", "/sys/kernel/vmcoreinfo", ...).
        self.vmcoreinfo_source: Optional[str] = None
        self._index: Dict[bool, Tuple[List[int], List[Segment]]] = {}

    # -- facts ------------------------------------------------------------

    @property
    def release(self) -> Optional[str]:
        return self.vmcoreinfo.osrelease if self.vmcoreinfo else None

    @property
    def page_size(self) -> Optional[int]:
        return self.vmcoreinfo.page_size if self.vmcoreinfo else None

    @property
    def kaslr_offset(self) -> Optional[int]:
        return self.vmcoreinfo.kernel_offset if self.vmcoreinfo else None

    @property
    def crash_time(self) -> Optional[int]:
        return self.vmcoreinfo.crash_time if self.vmcoreinfo else None

    @property
    def cpus(self) -> Optional[int]:
        """CPUs with a register note (vmcores); subclasses refine this."""
        return len(self.notes.prstatus) or None

    @property
    def is_live(self) -> bool:
        return False

    def segment_counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for seg in self.segments:
            counts[seg.kind] = counts.get(seg.kind, 0) + 1
        return counts

    # -- reads ------------------------------------------------------------

    def _build_index(self, physical: bool) -> Tuple[List[int], List[Segment]]:
        """Sorted, non-overlapping segments of one address space.  Where two
        overlap (a kcore's text alias of RAM, a kdump text segment), the first
        one of the preferred kind wins."""
        idx = self._index.get(physical)
        if idx is not None:
            return idx
        candidates = []
        for seg in self.segments:
            start = seg.paddr if physical else seg.vaddr
            if start is None or seg.memsz == 0:
                continue
            # The physical space is RAM's; other kinds only fill gaps.
            rank = 0 if (not physical or seg.kind == "ram") else 1
            candidates.append((rank, start, seg))
        candidates.sort(key=lambda c: (c[0], c[1]))
        chosen: List[Tuple[int, Segment]] = []
        for _, start, seg in candidates:
            end = start + seg.memsz
            if any(s < end and start < s + o.memsz for s, o in chosen):
                continue
            chosen.append((start, seg))
        chosen.sort(key=lambda c: c[0])
        idx = ([s for s, _ in chosen], [seg for _, seg in chosen])
        self._index[physical] = idx
        return idx

    def find_segment(self, addr: int, physical: bool = False) -> Optional[Segment]:
        starts, segs = self._build_index(physical)
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < starts[i] + segs[i].memsz:
            return segs[i]
        return None

    def read(self, addr: int, size: int, physical: bool = False) -> bytes:
        """Read ``size`` bytes at ``addr``; raises :class:`AddressError` for
        bytes no segment covers.  Bytes past a segment's p_filesz are zeros;
        :meth:`read_ex` says which."""
        return self.read_ex(addr, size, physical).data

    def read_ex(self, addr: int, size: int, physical: bool = False) -> ReadResult:
        space = "physical" if physical else "virtual"
        if size < 0 or addr < 0 or addr + size > 1 << 64:
            raise AddressError(f"{self.path}: bad {space} range {addr:#x}+{size:#x}", addr)
        out = bytearray()
        zeros: List[Tuple[int, int]] = []
        pos, end = addr, addr + size
        while pos < end:
            seg = self.find_segment(pos, physical)
            if seg is None:
                data = self._read_fallback(pos, end - pos, physical)
                if data is None:
                    raise AddressError(
                        f"{self.path}: no segment covers {space} address {pos:#x}; "
                        "Core.segments lists what the core holds",
                        pos,
                    )
                out += data
                pos += len(data)
                continue
            start = seg.paddr if physical else seg.vaddr
            assert start is not None
            rel = pos - start
            n = min(end, start + seg.memsz) - pos
            in_file = max(0, min(n, seg.filesz - rel))
            if in_file:
                out += self._read_file(seg.offset + rel, in_file, pos, physical)
            if n > in_file:
                zeros.append((pos + in_file, n - in_file))
                out += bytes(n - in_file)
            pos += n
        return ReadResult(bytes(out), zeros)

    def read_dumped(self, addr: int, size: int, physical: bool = False) -> bytes:
        """Like :meth:`read`, but bytes the file does not hold -- past a
        segment's p_filesz, or in no segment -- raise :class:`AddressError`
        instead of reading as zeros: what a reader that reports excluded
        pages needs."""
        seg = self.find_segment(addr, physical)
        start = None if seg is None else (seg.paddr if physical else seg.vaddr)
        if seg is not None and start is not None and addr + size <= start + seg.filesz:
            # The common case: wholly inside one segment's file bytes.
            return self._read_file(seg.offset + addr - start, size, addr, physical)
        res = self.read_ex(addr, size, physical)
        if res.zero_filled:
            a, _ = res.zero_filled[0]
            space = "physical" if physical else "virtual"
            raise AddressError(f"{self.path}: {space} {a:#x} is not in the dump", a)
        return res.data

    def _read_file(self, offset: int, size: int, addr: int, physical: bool) -> bytes:
        """Bytes of the file backing a segment (ELF cores override this; a
        kdump file's pages are read through drgn instead)."""
        raise KcoreToolError(f"{self.path}: {self.kind} cores have no file-backed segments to read")

    def _read_fallback(self, addr: int, size: int, physical: bool) -> Optional[bytes]:
        """Bytes for an address no segment covers, or None (kdump overrides)."""
        return None

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        pass

    def __enter__(self) -> Core:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
