"""Parse /proc/vmallocinfo lines (format: kernel-vmalloc-kcore.md §B.8)."""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

_LINE = re.compile(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+(\d+)\s*(.*)$")
_WORDS = ("ioremap", "sparse", "vmalloc", "vmap", "user", "dma-coherent", "vpages")


@dataclasses.dataclass(frozen=True)
class VmallocInfoLine:
    start: int
    end: int            # exclusive; includes the guard page for vm_struct areas
    size: int
    kind: str           # "vm_struct" | "vm_map_ram" | "unpurged"
    caller: Optional[str] = None   # e.g. "kct_make_vmalloc+0x2f/0x70 [kcoretool_test]"
    pages: Optional[int] = None
    phys: Optional[int] = None
    words: tuple[str, ...] = ()
    raw: str = ""

    @property
    def caller_function(self) -> Optional[str]:
        return self.caller.split("+", 1)[0] if self.caller else None

    @property
    def caller_module(self) -> Optional[str]:
        m = re.search(r"\[(\S+)\]$", self.caller or "")
        return m.group(1) if m else None


def parse(text: str) -> list[VmallocInfoLine]:
    out = []
    for raw in text.splitlines():
        m = _LINE.match(raw.strip())
        if not m:
            continue
        start, end, size = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3))
        rest = m.group(4).strip()
        if rest == "vm_map_ram":
            out.append(VmallocInfoLine(start, end, size, "vm_map_ram", raw=raw))
            continue
        if rest == "unpurged vm_area":
            out.append(VmallocInfoLine(start, end, size, "unpurged", raw=raw))
            continue
        caller = None
        cm = re.match(r"(\S+\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[\S+\])?)\s*(.*)$", rest)
        if cm:
            caller, rest = cm.group(1), cm.group(2)
        pages = phys = None
        words = []
        for tok in rest.split():
            if tok.startswith("pages="):
                pages = int(tok[6:])
            elif tok.startswith("phys="):
                phys = int(tok[5:], 16)
            elif tok in _WORDS:
                words.append(tok)
        out.append(VmallocInfoLine(start, end, size, "vm_struct", caller, pages, phys,
                                   tuple(words), raw))
    return out
