# SPDX-License-Identifier: LGPL-2.1-or-later
"""
``kcoretool vmalloc snapshot | diff | top``
-------------------------------------------

vmalloc over time: save a state, compare two states, watch a live kernel.
Thin faces over :meth:`kcoretool.api.Kernel.snapshot`,
:func:`kcoretool.api.load_snapshot` and :func:`kcoretool.api.diff`; the
comparison itself lives in :mod:`kcoretool.model.diff`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import click

from kcoretool.cli.options import check_kind_option, example
from kcoretool.cli.output import human
from kcoretool.errors import KcoreToolError

__all__ = ("diff", "snapshot", "top")


def _obj(ctx: click.Context) -> Any:
    return ctx.find_root().obj


def _check_kinds(kinds: Sequence[str]) -> None:
    from kcoretool.api import KINDS

    check_kind_option(kinds, KINDS)


def _warn_model(ctx: click.Context, model: Any, what: str) -> None:
    if not model.warnings:
        return
    if getattr(_obj(ctx), "debug", False):
        for w in model.warnings:
            click.echo(f"kcoretool: warning: {what}: {w}", err=True)
    else:
        click.echo(f"kcoretool: warning: {what}: {len(model.warnings)} problem(s) walking kernel "
                   f"structures; first: {model.warnings[0]} (--debug shows all)", err=True)


def _when(t: Optional[int]) -> str:
    if t is None:
        return "time unknown"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    except (OverflowError, ValueError, OSError):
        return f"time {t} (no calendar date)"


def _signed(n: int, size: bool = False) -> str:
    if size:
        return ("+" if n > 0 else "-" if n < 0 else "") + human(abs(n)) if n else "0"
    return f"{n:+d}" if n else "0"


# -- snapshot ------------------------------------------------------------------


@click.command("snapshot", short_help="Save the whole vmalloc model as a JSON snapshot file.",
               epilog=example("kcoretool vmalloc snapshot -o before.json"))
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              help="Where to write the snapshot (JSON; written atomically). '-' for stdout.")
@click.pass_context
def snapshot(ctx: click.Context, output: str) -> None:
    """Save the whole vmalloc state (areas, lazy areas, blocks, holes, totals)
    with release, boot id, KASLR offset and time, for `vmalloc diff`."""
    k = _obj(ctx).kernel()
    snap = k.snapshot(refresh=True)
    _warn_model(ctx, snap.model, "snapshot")
    if output == "-":
        snap.write(sys.stdout)
        return
    snap.save(output)
    m = snap.model
    if getattr(_obj(ctx), "json", False):
        from kcoretool.cli.output import emit_json

        emit_json({"path": output, **snap.header(), "areas": m.nr_areas, "lazy": len(m.lazy),
                   "pooled": len(m.pooled), "blocks": len(m.blocks),
                   "holes": len(m.holes) if m.holes is not None else None})
        return
    click.echo(f"{output}: {m.nr_areas} area(s), {len(m.lazy)} lazy, {len(m.pooled)} pooled, "
               f"{len(m.blocks)} block(s), "
               f"{len(m.holes) if m.holes is not None else 'no list of'} hole(s)")
    click.echo(f"release {snap.release or '?'}; boot id {snap.boot_id or '?'}"
               + ("" if snap.boot_id else f" ({snap.boot_id_source})")
               + f"; KASLR offset {hex(snap.kaslr_offset) if snap.kaslr_offset is not None else '?'}")
    click.echo(f"time {_when(snap.time)} ({snap.time_source})")


# -- diff ----------------------------------------------------------------------


def _state(ctx: click.Context, path: Optional[str]) -> Any:
    """A snapshot file as it is, a core as its snapshot now."""
    from kcoretool.api import load_snapshot, open_kernel

    o = _obj(ctx)
    if path is None:
        snap = o.kernel().snapshot(refresh=True)
    else:
        from kcoretool.api import is_snapshot_file

        if not os.path.exists(path):
            raise KcoreToolError(f"{path}: no such file (give a core, /proc/kcore or a snapshot file)")
        if is_snapshot_file(path):
            return load_snapshot(path)
        snap = open_kernel(path, o.vmlinux, debuginfo=o.debuginfo).snapshot()
    _warn_model(ctx, snap.model, snap.source_path or "core")
    return snap


def _area_rows(areas: Iterable[Any], ps: int) -> List[Tuple[str, ...]]:
    rows: List[Tuple[str, ...]] = []
    for a in areas:
        vm = a.vm
        rows.append((f"{a.start:#x}", f"{a.end:#x}", human(a.end - a.start), a.kind, str(a.pages(ps)),
                     (vm.caller_symbol or f"{vm.caller:#x}") if vm is not None else "-"))
    return rows


def _change_text(c: Any, ps: int) -> str:
    parts = []
    x, y = c.before, c.after
    for f in c.fields:
        if f == "end":
            parts.append(f"end {x.end:#x} -> {y.end:#x}")
        elif f == "kind":
            parts.append(f"kind {x.kind} -> {y.kind}")
        elif f == "pages":
            parts.append(f"pages {x.pages(ps)} -> {y.pages(ps)}")
        elif f == "vm_flags":
            parts.append(f"flags {'|'.join(x.vm.flag_names)} -> {'|'.join(y.vm.flag_names)}")
        elif f == "vm_size":
            parts.append(f"vm size {x.vm.size} -> {y.vm.size}")
        elif f == "requested_size":
            parts.append(f"requested {x.vm.requested_size} -> {y.vm.requested_size}")
    return ", ".join(parts)


def _caller_rows(callers: Iterable[Any]) -> List[Tuple[str, ...]]:
    return [(c.caller, c.kind, f"{c.areas_before} -> {c.areas_after}", _signed(c.areas_delta),
             f"{c.pages_before} -> {c.pages_after}", _signed(c.pages_delta),
             f"{human(c.bytes_before)} -> {human(c.bytes_after)}", _signed(c.bytes_delta, True))
            for c in callers]


def _side(label: str, s: Any) -> str:
    where = f"{s.source or '?'} ({s.kind or '?'})"
    if s.file:
        where = f"{s.file} (snapshot of {s.source or '?'}, {s.kind or '?'})"
    return (f"{label}  {where}: {s.release or 'release ?'}, "
            f"boot id {s.boot_id or '?'}, KASLR "
            f"{hex(s.kaslr_offset) if s.kaslr_offset is not None else '?'}, {_when(s.time)}; "
            f"{s.areas} areas, {s.pages} pages, {human(s.bytes)}")


@click.command("diff", short_help="What changed between two cores or snapshots, per area and per caller.",
               epilog=example("kcoretool vmalloc diff before.json after.json --summary"))
@click.argument("a", metavar="A")
@click.argument("b", metavar="[B]", required=False)
@click.option("--kind", "kinds", multiple=True, metavar="KIND", help="Only these kinds (repeatable).")
@click.option("--caller", metavar="GLOB", help="Only callers matching GLOB (function name or %pS symbol).")
@click.option("--min-delta", metavar="SIZE", help="Only callers whose bytes changed by at least SIZE (4K, 1M).")
@click.option("--summary", "summary_only", is_flag=True, help="Only the per-caller summary, no area lists.")
@click.pass_context
def diff(ctx: click.Context, a: str, b: Optional[str], kinds: Tuple[str, ...], caller: Optional[str],
         min_delta: Optional[str], summary_only: bool) -> None:
    """What changed from A to B: areas freed, new and changed, and a
    per-caller summary, most growth first.  A and B are each a core
    (vmcore, /proc/kcore) or a snapshot file; B defaults to the -c core."""
    from kcoretool.cli.output import parse_size, table

    _check_kinds(kinds)
    md = parse_size(min_delta, "--min-delta") if min_delta is not None else 0
    from kcoretool.api import diff as diff_states

    sa = _state(ctx, a)
    sb = _state(ctx, b)
    d = diff_states(sa, sb, kinds=kinds or None, caller=caller, min_delta=md)
    if getattr(_obj(ctx), "json", False):
        from kcoretool.cli.output import emit_json

        emit_json(d.to_dict())
        return
    ps = d.page_size
    click.echo(_side("A", d.a))
    click.echo(_side("B", d.b))
    click.echo(d.boot_note)
    heads = ("START", "END", "SIZE", "KIND", "PAGES", "CALLER")
    right = ("left", "left", "right", "left", "right", "left")
    if d.same_boot and not summary_only:
        for title, areas in (("freed (in A only)", d.freed), ("new (in B only)", d.new)):
            click.echo(f"\n{title}: {len(areas)} area(s)")
            if areas:
                click.echo(table(_area_rows(areas, ps), heads, right))
        click.echo(f"\nchanged (same allocation): {len(d.changed)} area(s)")
        if d.changed:
            click.echo(table([(f"{c.after.start:#x}", c.after.kind,
                               (c.after.vm.caller_symbol or "-") if c.after.vm is not None else "-",
                               _change_text(c, ps)) for c in d.changed],
                             ("START", "KIND", "CALLER", "CHANGE")))
        click.echo(f"unchanged: {d.unchanged} area(s)")
    click.echo(f"\nby caller: {len(d.callers)} changed")
    if d.callers:
        click.echo(table(_caller_rows(d.callers),
                         ("CALLER", "KIND", "AREAS", "+/-", "PAGES", "+/-", "SIZE", "+/-"),
                         ("left", "left", "right", "right", "right", "right", "right", "right")))
    t = d.total
    click.echo(f"total: areas {t.areas_before} -> {t.areas_after} ({_signed(t.areas_delta)}), "
               f"pages {t.pages_before} -> {t.pages_after} ({_signed(t.pages_delta)}), "
               f"size {human(t.bytes_before)} -> {human(t.bytes_after)} ({_signed(t.bytes_delta, True)})"
               + ("" if not (kinds or caller or md) else " (filtered)"))


# -- top -------------------------------------------------------------------------

#: sort key -> (column title, value of a row); rows are
#: (caller, kind, areas, pages, bytes, d_areas, d_pages, d_bytes, last_pages)
_TOP_KEYS = {
    "caller": ("CALLER", 0), "kind": ("KIND", 1), "areas": ("AREAS", 2), "pages": ("PAGES", 3),
    "size": ("SIZE", 4), "dareas": ("+AREAS", 5), "dpages": ("+PAGES", 6), "dsize": ("+SIZE", 7),
    "last": ("+LAST", 8),
}
_TOP_ORDER = list(_TOP_KEYS)
#: The longest -d: a day (time.sleep and select refuse far bigger numbers).
_MAX_DELAY = 86400
_TOP_HELP = ("Sort column, like top -o: caller, kind, areas, pages, size, dareas, dpages, dsize "
             "(since start), last (pages since the previous refresh); prefix - for low to high.")


def _parse_sort(text: str) -> Tuple[str, bool]:
    desc = not text.startswith("-")
    key = text.lstrip("+-").lower()
    if key not in _TOP_KEYS:
        raise click.BadParameter(f"unknown sort key {key!r}; one of {', '.join(_TOP_ORDER)}",
                                 param_hint="--sort")
    return key, desc


def _top_rows(now: Dict[Any, List[int]], first: Dict[Any, List[int]],
              last: Dict[Any, List[int]]) -> List[Tuple[Any, ...]]:
    zero = [0, 0, 0]
    rows = []
    for key in now.keys() | first.keys():
        n, f, p = now.get(key, zero), first.get(key, zero), last.get(key, zero)
        if n is zero and f is zero:
            continue
        row = (key[0], key[1], n[0], n[1], n[2], n[0] - f[0], n[1] - f[1], n[2] - f[2], n[1] - p[1])
        if not n[0] and row[5] == row[6] == row[8] == 0:
            continue
        rows.append(row)
    return rows


def _sort_rows(rows: List[Tuple[Any, ...]], key: str, desc: bool) -> None:
    i = _TOP_KEYS[key][1]
    # ties: most pages first, then by name, whichever way the main key goes
    rows.sort(key=lambda r: (r[0], r[1]))
    rows.sort(key=lambda r: r[3], reverse=True)
    rows.sort(key=lambda r: r[i], reverse=desc)


def _render_top(rows: List[Tuple[Any, ...]], key: str, desc: bool, limit: int) -> List[str]:
    from kcoretool.cli.output import table

    heads = [t for t, _ in _TOP_KEYS.values()]
    i = _TOP_KEYS[key][1]
    heads[i] = heads[i] + ("v" if desc else "^")
    shown = rows[:limit] if limit else rows
    text = table([(r[0], r[1], str(r[2]), str(r[3]), human(r[4]), _signed(r[5]), _signed(r[6]),
                   _signed(r[7], True), _signed(r[8])) for r in shown], heads,
                 ("left", "left") + ("right",) * 7)
    out = text.splitlines()
    if limit and len(rows) > limit:
        out.append(f"... {len(rows) - limit} more caller(s)")
    return out


class _Keys:
    """Single keys from a terminal without Enter (cbreak), restored on exit."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.saved: Any = None

    def __enter__(self) -> _Keys:
        if self.enabled:
            import termios
            import tty

            try:
                self.saved = termios.tcgetattr(sys.stdin.fileno())
                tty.setcbreak(sys.stdin.fileno())
            except (termios.error, OSError, ValueError):
                self.enabled = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self.saved)

    def wait(self, seconds: float) -> str:
        """Sleep ``seconds`` or until a key; the key ('' if none)."""
        if not self.enabled:
            time.sleep(seconds)
            return ""
        import select

        r, _, _ = select.select([sys.stdin], [], [], seconds)
        return os.read(sys.stdin.fileno(), 1).decode(errors="replace") if r else ""


@click.command("top", short_help="Live per-caller vmalloc usage, refreshed like top.",
               epilog=example("kcoretool vmalloc top -d 5 -o dsize"))
@click.option("-d", "--delay", "interval", type=float, default=2.0, show_default=True,
              help="Seconds between refreshes.")
@click.option("-n", "--iterations", "count", type=int, default=0,
              help="Stop after N refreshes (default: until q or Ctrl-C).")
@click.option("-o", "--sort", "sort_text", default="dpages", show_default=True, metavar="KEY",
              help=_TOP_HELP)
@click.option("--kind", "kinds", multiple=True, metavar="KIND", help="Only these kinds (repeatable).")
@click.option("--caller", metavar="GLOB", help="Only callers matching GLOB.")
@click.option("-b", "--batch", is_flag=True, help="Plain text even on a terminal (as top -b).")
@click.option("-m", "--max-rows", type=int, default=0,
              help="At most N callers per refresh (default: all in plain text, the screen on a terminal).")
@click.pass_context
def top(ctx: click.Context, interval: float, count: int, sort_text: str, kinds: Tuple[str, ...],
        caller: Optional[str], batch: bool, max_rows: int) -> None:
    """Live per-caller vmalloc usage, refreshed: areas, pages, size, and the
    change since the first refresh and since the previous one.  Plain text
    when stdout is not a terminal (or with -b).  Keys on a terminal: q quit,
    < and > move the sort column, R reverses, space refreshes now."""
    if not 0 < interval <= _MAX_DELAY:  # NaN fails every comparison
        raise click.BadParameter(f"{interval:g}: give seconds above 0, at most {_MAX_DELAY} (a day)",
                                 param_hint="--delay")
    if count < 0 or max_rows < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--iterations/--max-rows")
    _check_kinds(kinds)
    key, desc = _parse_sort(sort_text)
    from kcoretool.api import caller_totals

    o = _obj(ctx)
    k = o.kernel()
    if not k.live:
        what = "drgn's program is a saved core" if o.preset is not None else f"{o.core_path} is a saved core"
        raise KcoreToolError(f"vmalloc top watches a live kernel (/proc/kcore); {what}: compare saved states "
                             "with `vmalloc diff A B`")
    tty = sys.stdout.isatty() and not batch
    first: Optional[Dict[Any, List[int]]] = None
    last: Dict[Any, List[int]] = {}
    n = 0
    try:
        with _Keys(tty and sys.stdin.isatty()) as keys:
            while True:
                t0 = time.monotonic()
                m = k.vmalloc(refresh=True)
                now = caller_totals(m, kinds or None, caller)
                took = time.monotonic() - t0
                n += 1
                if first is None:
                    first = last = now
                rows = _top_rows(now, first, last)
                _sort_rows(rows, key, desc)
                tot = [sum(r[i] for r in rows) for i in range(2, 9)]
                last_areas = sum(v[0] for v in last.values())
                lazy_pages = sum((a.end - a.start) // m.page_size for a in m.lazy)
                head = [
                    f"kcoretool vmalloc top - {time.strftime('%H:%M:%S')} refresh {n}"
                    f"{'/' + str(count) if count else ''} every {interval:g}s - {m.release or '?'}"
                    f" - took {took:.2f}s",
                    f"areas {tot[0]} ({_signed(tot[3])} since start, {_signed(tot[0] - last_areas)}"
                    f" since last), pages {tot[1]} ({_signed(tot[4])}, {_signed(tot[6])}), size {human(tot[2])}"
                    f" ({_signed(tot[5], True)}); lazy {len(m.lazy)} area(s), {lazy_pages} page(s)"
                    + (f"; {len(m.warnings)} walk warning(s)" if m.warnings else ""),
                ]
                if tty:
                    import shutil

                    height = shutil.get_terminal_size().lines
                    limit = max_rows or max(1, height - len(head) - 4)
                    lines = head + [""] + _render_top(rows, key, desc, limit)
                    click.echo("\x1b[H\x1b[2J" + "\n".join(lines), nl=False)
                else:
                    click.echo("\n".join(head + [""] + _render_top(rows, key, desc, max_rows)) + "\n")
                last = now
                if count and n >= count:
                    break
                deadline = time.monotonic() + interval
                while True:  # keys change the view; the refresh waits for the interval or space
                    left = deadline - time.monotonic()
                    ch = keys.wait(left) if left > 0 else ""
                    if ch in ("q", "Q"):
                        return
                    if ch in ("<", ">"):
                        i = _TOP_ORDER.index(key) + (1 if ch == ">" else -1)
                        key = _TOP_ORDER[i % len(_TOP_ORDER)]
                    elif ch == "R":
                        desc = not desc
                    elif ch in ("P", "A", "S", "D", "L"):
                        key = {"P": "pages", "A": "areas", "S": "size", "D": "dpages", "L": "last"}[ch]
                        desc = True
                    if ch == " " or left <= 0 or not ch:
                        break
                    rows2 = rows
                    _sort_rows(rows2, key, desc)
                    if tty:
                        click.echo("\x1b[H\x1b[2J" + "\n".join(head + [""] + _render_top(rows2, key, desc, limit)),
                                   nl=False)
    except KeyboardInterrupt:
        pass
    finally:
        if tty:
            click.echo("")
