"""
VMCOREINFO
----------

The ``KEY=value`` text the kernel publishes for dump tools
(:linux:`kernel/vmcore_info.c`, ``kernel/crash_core.c`` before 6.9). It is
the note named ``VMCOREINFO`` in /proc/kcore (4.19+) and in vmcores, and
``/sys/kernel/vmcoreinfo`` points at it in physical memory.

Value formats follow the kernel's macros: ``SYMBOL(x)`` and ``KERNELOFFSET``
are hex without ``0x`` (``%lx``); ``OFFSET``/``SIZE``/``LENGTH`` are decimal
(``%lu``); ``NUMBER(x)`` is decimal (``%ld``) except the few the kernel
prints with ``0x%lx`` (``NUMBER(VMALLOC_START)`` since 6.9).
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from kcoretool.errors import CoreFormatError

__all__ = ("VmcoreInfo",)

# The kernel reserves one page for the text (VMCOREINFO_BYTES); a little
# slack covers arches with bigger pages.  Anything larger is not VMCOREINFO.
MAX_VMCOREINFO_SIZE = 1 << 16


class VmcoreInfo(Mapping[str, str]):
    """Parsed VMCOREINFO: a read-only mapping of key to raw string value,
    plus typed accessors.  Parsing is lenient -- a damaged line is kept in
    :attr:`malformed` -- and the typed accessors raise
    :class:`CoreFormatError` naming the key when a value is unusable.
    """

    def __init__(self, text: bytes | str, where: str = "VMCOREINFO") -> None:
        if isinstance(text, bytes):
            text = text.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        self.raw = text
        self.where = where
        self._items: Dict[str, str] = {}
        self.malformed: List[str] = []
        for line in text.splitlines():
            if not line:
                continue
            key, sep, value = line.partition("=")
            if not sep or not key:
                self.malformed.append(line)
                continue
            self._items[key] = value

    # Mapping protocol
    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"VmcoreInfo({len(self._items)} keys, osrelease={self.get('OSRELEASE')!r})"

    # Typed accessors
    def _int(self, key: str, base: int) -> Optional[int]:
        value = self._items.get(key)
        if value is None:
            return None
        text = value.strip()
        try:
            if base == 0 and not text.lower().lstrip("-").startswith("0x"):
                return int(text, 10)
            return int(text, base)
        except ValueError:
            raise CoreFormatError(
                f"{self.where}: VMCOREINFO {key}={value!r} is not a number; "
                "the note is damaged"
            ) from None

    @property
    def osrelease(self) -> Optional[str]:
        return self._items.get("OSRELEASE")

    @property
    def page_size(self) -> Optional[int]:
        size = self._int("PAGESIZE", 10)
        if size is not None and (size <= 0 or size & (size - 1)):
            raise CoreFormatError(
                f"{self.where}: VMCOREINFO PAGESIZE={size} is not a power of two; "
                "the note is damaged"
            )
        return size

    @property
    def kernel_offset(self) -> Optional[int]:
        """KASLR offset of the kernel image (``KERNELOFFSET``, x86 and arm64)."""
        return self._int("KERNELOFFSET", 16)

    @property
    def build_id(self) -> Optional[str]:
        return self._items.get("BUILD-ID")

    @property
    def crash_time(self) -> Optional[int]:
        """Seconds since the epoch, written by the crash kernel path only."""
        return self._int("CRASHTIME", 10)

    def symbol(self, name: str) -> Optional[int]:
        return self._int(f"SYMBOL({name})", 16)

    def number(self, name: str) -> Optional[int]:
        return self._int(f"NUMBER({name})", 0)

    def offset(self, type_name: str, member: str) -> Optional[int]:
        return self._int(f"OFFSET({type_name}.{member})", 10)

    def size(self, type_name: str) -> Optional[int]:
        return self._int(f"SIZE({type_name})", 10)

    def length(self, name: str) -> Optional[int]:
        return self._int(f"LENGTH({name})", 10)

    def symbols(self) -> Iterator[Tuple[str, int]]:
        """Every ``SYMBOL(name)`` entry that parses, as (name, address)."""
        for key in self._items:
            if key.startswith("SYMBOL(") and key.endswith(")"):
                try:
                    value = self._int(key, 16)
                except CoreFormatError:
                    continue
                if value is not None:
                    yield key[7:-1], value
