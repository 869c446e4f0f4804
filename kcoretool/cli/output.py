"""Output helpers shared by the commands: JSON, tables, hexdumps, numbers."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import click

from kcoretool.errors import KcoreToolError

__all__ = ("JSON_LIMIT", "HexdumpWriter", "emit_json", "hexdump_lines", "human", "hx", "json_limit", "parse_address",
           "parse_size", "stream_table", "table")


#: --json holds the bytes as hex in one document: at most this many.
JSON_LIMIT = 1 << 24


def json_limit(size: int) -> None:
    """Refuse a --json read of more than :data:`JSON_LIMIT` bytes."""
    if size > JSON_LIMIT:
        raise KcoreToolError(f"--json carries at most {JSON_LIMIT >> 20} MiB of data; "
                             "write the bytes with -o FILE instead")


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], colalign: Optional[Sequence[str]] = None) -> str:
    from tabulate import tabulate

    return tabulate(list(rows), headers=list(headers), tablefmt="simple", disable_numparse=True,
                    colalign=colalign)


def record_cells(record: Any, columns: Sequence[Tuple[str, Any]]) -> List[str]:
    """One table row of a model record: each column's field, written as its
    ``fmt`` says (:class:`kcoretool.model.record.Column`)."""
    out = []
    for name, col in columns:
        v = getattr(record, name)
        if v is None:
            out.append("-")
        elif col.fmt == "hex":
            out.append(hx(v))
        elif col.fmt == "bytes":
            out.append(human(v))
        elif col.fmt == "words":
            out.append(" ".join(w.lower() for w in v) or "-")
        else:
            out.append(str(v))
    return out


def hx(value: Optional[int], width: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:#0{width + 2}x}" if width else f"{value:#x}"


def hexdump_lines(addr: int, data: bytes, width: int = 16) -> Iterator[str]:
    """``xxd``-style lines, labelled with the address rather than an offset."""
    for off in range(0, len(data), width):
        chunk = data[off : off + width]
        groups = " ".join(chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
        full = (width * 5) // 2 - 1
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        yield f"{addr + off:016x}: {groups:<{full}}  {text}"


class HexdumpWriter:
    """A sink (``write(bytes)``) that prints a hexdump as the bytes arrive,
    any length, in bounded memory.  Like ``hexdump -C``, a line equal to
    the one before is printed as a single ``*``; the last line is always
    printed, so the end of the range shows."""

    def __init__(self, addr: int, echo: Callable[[str], Any] = click.echo, width: int = 16) -> None:
        self.addr, self.echo, self.width = addr, echo, width
        self._buf = b""
        self._prev: Optional[bytes] = None
        self._skipped: Optional[Tuple[int, bytes]] = None

    def write(self, data: bytes) -> int:
        buf = self._buf + bytes(data)
        w = self.width
        whole = len(buf) - len(buf) % w
        for off in range(0, whole, w):
            self._line(buf[off : off + w])
        self._buf = buf[whole:]
        return len(data)

    def _line(self, chunk: bytes) -> None:
        if chunk == self._prev:
            if self._skipped is None:
                self.echo("*")
            self._skipped = (self.addr, chunk)
        else:
            self._skipped = None
            self.echo(next(hexdump_lines(self.addr, chunk, self.width)))
            self._prev = chunk
        self.addr += len(chunk)

    def close(self) -> None:
        if self._buf:
            self._prev = None  # a short last line always shows
            self._line(self._buf)
            self._buf = b""
        elif self._skipped is not None:
            addr, chunk = self._skipped
            self.echo(next(hexdump_lines(addr, chunk, self.width)))
            self._skipped = None


_NUM = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+|[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*)$")


def _number(text: str) -> Optional[int]:
    """0x-prefixed hex, plain decimal, or bare hex when it has a letter a-f
    (so ``ffffffff81000000`` works and ``1000`` means one thousand)."""
    if not _NUM.match(text):
        return None
    if text[:2].lower() == "0x":
        return int(text, 16)
    if text.isdigit():
        return int(text, 10)
    return int(text, 16)


_SIZE = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)([kKmMgG]?)$")


def parse_size(text: str, param: Optional[str] = None) -> int:
    """A byte count: decimal or 0x-prefixed hex, optionally with a K/M/G
    (binary) suffix.  Not an address: bare hex (``abc``) is no size, and
    an empty text is none either.  ``param`` names the option in the
    message."""
    m = _SIZE.match(text.strip())
    if m is None:
        raise click.BadParameter(f"{text!r} is not a size (use 4096, 0x1000 or 4K)", param_hint=param)
    digits, suffix = m.groups()
    mult = 1 << {"": 0, "k": 10, "m": 20, "g": 30}[suffix.lower()]
    if suffix and digits[:2].lower() == "0x":
        raise click.BadParameter(f"{text!r} is not a size (use 4096, 0x1000 or 4K)", param_hint=param)
    return int(digits, 0 if digits[:2].lower() == "0x" else 10) * mult


_NOT_IN_VMCOREINFO = ("this core's VMCOREINFO does not list it; give a numeric address "
                      "(`kcoretool vmcoreinfo` shows the SYMBOL() entries)")


def parse_address(text: str, symbols: Optional[Any] = None, missing: str = _NOT_IN_VMCOREINFO) -> int:
    """ADDR as hex, decimal or ``SYMBOL[+OFF]``; ``symbols`` maps a name to
    an address (VMCOREINFO's SYMBOL() entries, or a kernel's symbol table);
    ``missing`` says why a name was not found."""
    t = text.strip()
    value = _number(t)
    if value is not None:
        return _in_64_bits(value, text)
    name, plus, off_text = t.partition("+")
    off = 0
    if plus:
        off_value = _number(off_text.strip())
        if off_value is None:
            raise KcoreToolError(f"bad offset {off_text!r} in address {text!r}; use SYMBOL+0x10")
        off = off_value
    name = name.strip()
    if not re.match(r"^[A-Za-z_.$][A-Za-z0-9_.$]*$", name):
        raise KcoreToolError(f"{text!r} is not an address; use 0xffff..., a decimal number or SYMBOL+OFF")
    addr = symbols(name) if symbols is not None else None
    if addr is None:
        raise KcoreToolError(f"unknown symbol {name!r}: {missing}")
    return _in_64_bits(addr + off, text)


def _in_64_bits(value: int, text: str) -> int:
    if value >= 1 << 64:
        raise KcoreToolError(f"address {text!r} is beyond the 64-bit address space (the last address "
                             f"is {(1 << 64) - 1:#x})")
    return value


def human(n: int) -> str:
    """A byte count as 4K, 1.5M, 32T (exact below 10 units unless round)."""
    for unit, shift in (("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << (shift - 3)) == 0 or n >= 10 << shift:
            v = n / (1 << shift)
            return f"{v:.1f}{unit}" if v != int(v) else f"{int(v)}{unit}"
    return str(n)


def stream_table(rows: Sequence[Sequence[str]], headers: Sequence[str], right: Tuple[int, ...]) -> Iterator[str]:
    """A tabulate-"simple"-looking table without tabulate's per-cell cost."""
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            if len(c) > widths[i]:
                widths[i] = len(c)

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    yield fmt(headers)
    yield "  ".join("-" * w for w in widths)
    for r in rows:
        yield fmt(r)
