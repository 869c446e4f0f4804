"""
kdump-compressed files
----------------------

makedumpfile's default output (``-c``/``-l``/``-p``/``-z``) is not ELF.  Its
pages are read through drgn, whose wheel bundles libkdumpfile; only the
fixed headers are read here, for ``info`` and ``segments``: the
``disk_dump_header``, the ``kdump_sub_header`` (VMCOREINFO's location) and
the second bitmap (which pages were dumped), after
:mod:`kcoretool.source.kdumpcheck` has checked every range against the
file size.  Pages whose data lies past the end of a cut file read as
``truncated``; drgn is never asked for them.  Layout: makedumpfile's
``diskdump_mod.h`` and IMPLEMENTATION file.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Dict, List, Optional, Tuple

from kcoretool._interrupts import deferred_sigint
from kcoretool.errors import AddressError, CoreFormatError
from kcoretool.source.core import Core, ReadResult, Segment
from kcoretool.source.kdumpcheck import HDR, check_kdump
from kcoretool.source.vmcoreinfo import MAX_VMCOREINFO_SIZE, VmcoreInfo

if TYPE_CHECKING:
    import drgn

__all__ = ("KdumpCore",)

_UTS_LEN = 65


class KdumpCore(Core):
    kind = "kdump"

    def __init__(self, path: str, f: IO[bytes]) -> None:
        super().__init__(path)
        size = f.seek(0, 2)
        # Every range the headers name is checked before anything (drgn
        # included) reads it: libkdumpfile dies by SIGBUS on a cut file.
        self.layout = layout = check_kdump(path, f, size)
        f.seek(0)
        (_sig, self.header_version, uts, ts_sec, _ts_usec, self.status, block_size,
         sub_hdr_size, bitmap_blocks, max_mapnr, _ram, _dev, _written, _cur,
         self.nr_cpus) = HDR.unpack(f.read(HDR.size))
        self.utsname = [
            uts[i * _UTS_LEN : (i + 1) * _UTS_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
            for i in range(6)
        ]
        self.timestamp = ts_sec
        self.block_size = block_size
        vmcoreinfo = None
        self.phys_base: Optional[int] = None
        self.dump_level: Optional[int] = None
        sub = layout.sub
        if sub is not None:
            self.phys_base, self.dump_level = sub[0], sub[1]
            off_vmci, size_vmci = sub[5], sub[6]
            if self.header_version >= 3 and off_vmci and 0 < size_vmci <= MAX_VMCOREINFO_SIZE:
                f.seek(off_vmci)
                vmcoreinfo = f.read(size_vmci)
        if vmcoreinfo:
            self.vmcoreinfo = VmcoreInfo(vmcoreinfo, where=path)
            self.vmcoreinfo_source = "kdump sub-header"
        self.max_mapnr = layout.max_mapnr
        self.segments = self._dumped_runs(layout.bitmap)
        self._prog = None

    @property
    def incomplete(self) -> Optional[str]:
        """What the dump lacks, in one phrase, or None when it is whole."""
        return self.layout.describe_incomplete() if self.layout.incomplete else None

    def _dumped_runs(self, bitmap: bytes) -> List[Segment]:
        """Runs of pages the second bitmap marks as dumped, as physical segments."""
        page = self.page_size or 4096
        runs: List[Tuple[int, int]] = []
        start = None
        limit = min(len(bitmap) * 8, self.max_mapnr)
        # Whole bytes at a time: dumps are mostly long runs of 0x00 or 0xff.
        for byte_i, byte in enumerate(bitmap):
            base = byte_i * 8
            if base >= limit:
                break
            if byte == 0xFF and start is not None:
                continue
            if byte == 0 and start is None:
                continue
            for bit in range(8):
                pfn = base + bit
                if pfn >= limit:
                    break
                if byte >> bit & 1:
                    if start is None:
                        start = pfn
                elif start is not None:
                    runs.append((start, pfn))
                    start = None
        if start is not None:
            runs.append((start, limit))
        return [
            Segment(index=n, kind="ram", vaddr=None, paddr=s * page,
                    filesz=(e - s) * page, memsz=(e - s) * page, offset=0)
            for n, (s, e) in enumerate(runs)
        ]

    @property
    def cpus(self) -> Optional[int]:
        return self.nr_cpus if self.nr_cpus > 0 else None

    @property
    def crash_time(self) -> Optional[int]:
        t = super().crash_time
        return t if t is not None else (self.timestamp or None)

    def program(self) -> drgn.Program:
        """The drgn Program reading this file (memory only, no debug info)."""
        if self._prog is None:
            import drgn

            try:
                with deferred_sigint():  # drgn ignores what its plugin hooks raise
                    prog = drgn.Program()
                    prog.set_core_dump(self.path)
            except Exception as e:
                raise CoreFormatError(f"{self.path}: libkdumpfile (through drgn) cannot open it: {e}") from None
            self._prog = prog
        return self._prog

    def _read_pages(self, addr: int, size: int) -> ReadResult:
        """A physical read page by page: pages past the end of a cut file
        read as zeros listed in ``truncated``, pages makedumpfile left out
        as zeros listed in ``zero_filled`` (as an ELF vmcore's are); only
        the dumped, present pages are asked of drgn."""
        import drgn

        out = bytearray()
        runs: Dict[str, List[Tuple[int, int]]] = {"cut": [], "excluded": []}
        ps, pos, end = self.block_size, addr, addr + size
        got_any = False
        while pos < end:
            n = min(end, (pos // ps + 1) * ps) - pos
            why = "cut" if self.truncated_at(pos, n) is not None else None
            if why is None:
                try:
                    out += self.program().read(pos, n, True)
                    got_any = True
                except drgn.FaultError:
                    why = "excluded"
            if why is not None:
                lst = runs[why]
                if lst and lst[-1][0] + lst[-1][1] == pos:
                    lst[-1] = (lst[-1][0], lst[-1][1] + n)
                else:
                    lst.append((pos, n))
                out += bytes(n)
            pos += n
        if not got_any and not runs["cut"] and size <= ps:
            raise AddressError(f"{self.path}: physical address {addr:#x} is excluded from the dump "
                               "by makedumpfile or is not RAM", addr)
        return ReadResult(bytes(out), zero_filled=runs["excluded"], truncated=runs["cut"])

    def truncated_at(self, addr: int, size: int) -> Optional[int]:
        """The first physical address in [addr, addr+size) whose page lies
        past the end of a cut file, or None."""
        if not self.layout.truncated:
            return None
        ps = self.block_size
        pfn = self.layout.first_truncated(addr // ps, (addr + size + ps - 1) // ps)
        return None if pfn is None else max(addr, pfn * ps)

    def read_ex(self, addr: int, size: int, physical: bool = False) -> ReadResult:
        import drgn

        space = "physical" if physical else "virtual"
        if size < 0 or addr < 0 or addr + size > 1 << 64:
            raise AddressError(f"{self.path}: bad {space} range {addr:#x}+{size:#x}", addr)
        if physical and size and self.truncated_at(addr, size) is not None:
            return self._read_pages(addr, size)
        try:
            return ReadResult(self.program().read(addr, size, physical))
        except (drgn.FaultError, ValueError, OverflowError) as e:
            if physical and isinstance(e, drgn.FaultError) and size > self.block_size - addr % self.block_size:
                return self._read_pages(addr, size)
            if not isinstance(e, drgn.FaultError):
                raise AddressError(f"{self.path}: cannot read {space} {addr:#x}+{size:#x}: {e}", addr) from None
            space = "physical" if physical else "virtual"
            why = "excluded from the dump by makedumpfile" if "xclud" in str(e) else "not in the dump"
            raise AddressError(f"{self.path}: {space} address {e.address:#x} is {why}", e.address) from None
