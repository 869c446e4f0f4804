"""
kdump-compressed files
----------------------

makedumpfile's default output (``-c``/``-l``/``-p``/``-z``) is not ELF.  Its
pages are read through drgn, whose wheel bundles libkdumpfile; only the
fixed headers are read here, for ``info`` and ``segments``: the
``disk_dump_header``, the ``kdump_sub_header`` (VMCOREINFO's location) and
the second bitmap (which pages were dumped).  Layout: makedumpfile's
``diskdump_mod.h`` and IMPLEMENTATION file.
"""

from __future__ import annotations

import struct
from typing import IO, List, Optional, Tuple

from kcoretool.errors import AddressError, CoreFormatError
from kcoretool.source.core import Core, ReadResult, Segment
from kcoretool.source.vmcoreinfo import MAX_VMCOREINFO_SIZE, VmcoreInfo

__all__ = ("KdumpCore",)

# struct disk_dump_header: signature[8], header_version, utsname (6 x 65),
# timeval (aligned to 8), status, block_size, sub_hdr_size, bitmap_blocks,
# max_mapnr, total_ram_blocks, device_blocks, written_blocks, current_cpu,
# nr_cpus.
_UTS_LEN = 65
_HDR = struct.Struct("<8si390s6xqqIiiIIIIIIi")
# struct kdump_sub_header (follows the main header, one block later).
_SUB = struct.Struct("<QiiQQQQQQQQQQQ")
MAX_BITMAP = 1 << 30  # 1 GiB of bitmap = 8 Gi pages = 32 TiB: beyond that, damaged


class KdumpCore(Core):
    kind = "kdump"

    def __init__(self, path: str, f: IO[bytes]) -> None:
        super().__init__(path)
        f.seek(0)
        head = f.read(_HDR.size)
        if len(head) < _HDR.size:
            raise CoreFormatError(f"{path}: kdump header truncated; the file is cut short")
        (sig, self.header_version, uts, ts_sec, _ts_usec, self.status, block_size,
         sub_hdr_size, bitmap_blocks, max_mapnr, _ram, _dev, _written, _cur,
         self.nr_cpus) = _HDR.unpack(head)
        self.utsname = [
            uts[i * _UTS_LEN : (i + 1) * _UTS_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
            for i in range(6)
        ]
        self.timestamp = ts_sec
        if block_size <= 0 or block_size & (block_size - 1) or block_size > 1 << 20:
            raise CoreFormatError(f"{path}: kdump block size {block_size} is absurd; the header is damaged")
        self.block_size = block_size
        sub = b""
        if self.header_version >= 2 and sub_hdr_size > 0:
            f.seek(block_size)
            sub = f.read(_SUB.size)
        vmcoreinfo = None
        if len(sub) == _SUB.size:
            fields = _SUB.unpack(sub)
            self.phys_base, self.dump_level = fields[0], fields[1]
            off_vmci, size_vmci = fields[5], fields[6]
            if self.header_version >= 6 and fields[13]:
                max_mapnr = fields[13]  # max_mapnr_64
            if self.header_version >= 3 and off_vmci and 0 < size_vmci <= MAX_VMCOREINFO_SIZE:
                f.seek(off_vmci)
                vmcoreinfo = f.read(size_vmci)
        else:
            self.phys_base, self.dump_level = None, None
        if vmcoreinfo:
            self.vmcoreinfo = VmcoreInfo(vmcoreinfo, where=path)
            self.vmcoreinfo_source = "kdump sub-header"
        self.max_mapnr = max_mapnr
        self.segments = self._dumped_runs(f, sub_hdr_size, bitmap_blocks)
        self._prog = None

    def _dumped_runs(self, f: IO[bytes], sub_hdr_size: int, bitmap_blocks: int) -> List[Segment]:
        """Runs of pages the second bitmap marks as dumped, as physical segments."""
        bs = self.block_size
        bitmap_len = bitmap_blocks * bs
        if bitmap_len == 0 or bitmap_len > MAX_BITMAP:
            return []
        f.seek((1 + sub_hdr_size) * bs + bitmap_len // 2)
        bitmap = f.read(bitmap_len // 2)
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

    def program(self):  # -> drgn.Program
        """The drgn Program reading this file (memory only, no debug info)."""
        if self._prog is None:
            import drgn

            prog = drgn.Program()
            try:
                prog.set_core_dump(self.path)
            except Exception as e:
                raise CoreFormatError(f"{self.path}: libkdumpfile (through drgn) cannot open it: {e}") from None
            self._prog = prog
        return self._prog

    def read_ex(self, addr: int, size: int, physical: bool = False) -> ReadResult:
        import drgn

        try:
            return ReadResult(self.program().read(addr, size, physical))
        except drgn.FaultError as e:
            space = "physical" if physical else "virtual"
            why = "excluded from the dump by makedumpfile" if "xclud" in str(e) else "not in the dump"
            raise AddressError(f"{self.path}: {space} address {e.address:#x} is {why}", e.address) from None
