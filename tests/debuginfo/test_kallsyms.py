"""KallsymsTable: the kernel's kallsyms tables searched in place, the way
kallsyms_lookup_size_offset() searches them (aliases, per-CPU symbols, the
two offset encodings, two-byte name lengths), on tables built here."""

from __future__ import annotations

import struct
from typing import Dict, List, Tuple

import pytest

from kcoretool.debuginfo.kallsyms import KallsymsTable
from kcoretool.source.vmcoreinfo import VmcoreInfo

BASE = 0xFFFFFFFF81000000


def build(symbols: List[Tuple[int, str]], absolute_percpu: bool = True,
          pcrel: bool = False) -> Tuple[Dict[int, bytes], VmcoreInfo]:
    """Memory holding kallsyms tables for ``(address, "Tname")`` entries in
    kallsyms order, with one multi-character token ("vmalloc")."""
    tokens = [bytes([i]) if 32 <= i < 127 else b"?" for i in range(256)]
    tokens[0x80] = b"vmalloc"
    table = b""
    index = []
    for t in tokens:
        index.append(len(table))
        table += t + b"\0"
    names = b""
    for _, name in symbols:
        enc = name.encode().replace(b"vmalloc", b"\x80")
        n = len(enc)
        names += (bytes([0x80 | (n & 0x7F), n >> 7]) if n > 127 else bytes([n])) + enc
    offsets = []
    for i, (addr, _) in enumerate(symbols):
        if pcrel:  # v6.15+: from each offset's own slot (kallsyms_offsets is at 0x1000)
            offsets.append(addr - (0x1000 + 4 * i) - (1 << 64))
        elif absolute_percpu:
            offsets.append(addr if addr < BASE else -(addr - BASE) - 1)
        else:
            offsets.append(addr - BASE)
    layout = {
        "kallsyms_offsets": (0x1000, struct.pack(f"<{len(offsets)}i", *offsets)),
        "kallsyms_relative_base": (0x100000, struct.pack("<Q", BASE)),
        "kallsyms_num_syms": (0x100100, struct.pack("<I", len(symbols))),
        "kallsyms_names": (0x200000, names + bytes(0x200000 - len(names))),  # up to the token table
        "kallsyms_token_table": (0x400000, table + bytes(256)),
        "kallsyms_token_index": (0x500000, struct.pack("<256H", *index)),
    }
    if pcrel:
        del layout["kallsyms_relative_base"]
    mem = dict(layout.values())
    text = "".join(f"SYMBOL({name})={a:x}\n" for name, (a, _) in layout.items())
    return mem, VmcoreInfo(text)


def reader(mem: Dict[int, bytes]):
    def read(addr: int, size: int) -> bytes:
        for base, data in mem.items():
            if base <= addr and addr + size <= base + len(data):
                return data[addr - base:addr - base + size]
        raise ValueError(f"{addr:#x}+{size} not mapped")

    return read


SYMS = [
    (0x0, "Afixed_percpu_data"),
    (0x2000, "Dper_cpu_var"),
    (BASE, "T_text"),
    (BASE + 0x100, "T__vmalloc_node_range"),
    (BASE + 0x100, "t__vmalloc_alias"),
    (BASE + 0x180, "Tvfree"),
    (BASE + 0x200, "t" + "x" * 200),  # a name longer than 127: two length bytes
    (BASE + 0x300, "T_end"),
]


@pytest.mark.parametrize("absolute_percpu", [True, False])
def test_lookup_is_the_kernels(absolute_percpu: bool) -> None:
    syms = SYMS if absolute_percpu else SYMS[2:]
    mem, info = build(syms, absolute_percpu)
    t = KallsymsTable(reader(mem), dict(info.symbols()))
    assert t.num == len(syms)
    assert [t.address(i) for i in range(t.num)] == [a for a, _ in syms]
    # An alias: the first of the symbols at that address, sized to the next address.
    assert t.lookup(BASE + 0x123) == ("__vmalloc_node_range", BASE + 0x100, 0x80)
    assert t.lookup(BASE + 0x180) == ("vfree", BASE + 0x180, 0x80)
    assert t.lookup(BASE + 0x2FF) == ("x" * 200, BASE + 0x200, 0x100)
    assert t.lookup(BASE) == ("_text", BASE, 0x100)
    # Outside the core kernel's symbols (a module, BPF): not ours to name.
    assert t.lookup(BASE + 0x300) is None
    assert t.lookup(0xFFFFFFFFC0001000) is None
    assert t.lookup(0x2008) is None  # a per-CPU offset is no address


def test_pc_relative_offsets() -> None:
    """v6.15+: no kallsyms_relative_base, each offset from its own slot."""
    syms = [(BASE + 0x200 * i, n) for i, (_, n) in enumerate(SYMS[2:])]
    mem, info = build(syms, pcrel=True)
    t = KallsymsTable(reader(mem), dict(info.symbols()))
    assert [t.address(i) for i in range(t.num)] == [a for a, _ in syms]
    assert t.lookup(BASE + 0x205) == ("__vmalloc_node_range", BASE + 0x200, 0x200)
    assert list(t.names())[0] == ("T", "_text")


def test_needs_every_table() -> None:
    with pytest.raises(LookupError, match="no address for kallsyms_num_syms"):
        KallsymsTable(reader({}), {})
