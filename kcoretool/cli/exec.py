# SPDX-License-Identifier: LGPL-2.1-or-later
"""
``kcoretool exec``
------------------

Executable memory below the vmap layer: ``exec list`` (module regions, BPF
programs, trampolines, kprobe/ftrace pages, free and unattributed pack
chunks), ``exec packs`` (each bpf_prog_pack's chunks) and ``exec dump``
(one program's JIT image or a module region through the page-table reader).
Thin: everything comes from :meth:`kcoretool.api.Kernel.exec_memory`.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import click

from kcoretool._outfile import OutputFile
from kcoretool.api import EXEC_KINDS, ExecModel, ExecRegion, Kernel
from kcoretool.cli.options import check_kind_option, example
from kcoretool.cli.output import emit_json, human, hx, parse_address, record_cells, stream_table, table
from kcoretool.errors import KcoreToolError

__all__ = ("exec_",)


def _kernel(ctx: click.Context) -> Kernel:
    return ctx.find_root().obj.kernel()


def _model(ctx: click.Context) -> ExecModel:
    m = _kernel(ctx).exec_memory()
    if m.warnings:
        if ctx.find_root().obj.debug:
            for w in m.warnings:
                click.echo(f"kcoretool: warning: {w}", err=True)
        else:
            click.echo(f"kcoretool: warning: {len(m.warnings)} problem(s) walking executable memory; "
                       f"first: {m.warnings[0]} (--debug shows all)", err=True)
    return m


def _json(ctx: click.Context) -> bool:
    return bool(ctx.find_root().obj.json)


@click.group("exec", short_help="Executable memory: module regions, BPF programs, trampolines.",
             epilog=example("kcoretool -c vmcore exec list --kind bpf-prog"))
def exec_() -> None:
    """Executable memory: module regions, BPF programs in their packs, trampolines,
    kprobe and ftrace pages (from DWARF or the kernel's own BTF)."""


def _row_json(r: ExecRegion) -> Dict[str, Any]:
    return r.to_dict()


@exec_.command("list", short_help="Every executable allocation, with its kind and owner.",
               epilog=example("kcoretool -c vmcore exec list --owner 'ext4' --json"))
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only these kinds (repeatable): module-text, module-data, bpf-prog, free, ...")
@click.option("--owner", metavar="GLOB", help="Owner glob: module name, BPF program name or symbol.")
@click.pass_context
def list_(ctx: click.Context, kinds: List[str], owner: Optional[str]) -> None:
    """One row per executable allocation: start, end, size, kind, owner, BPF tag
    and id, and the vmap area holding it."""
    check_kind_option(kinds, EXEC_KINDS)
    m = _model(ctx)
    rows = list(m.select(kinds=kinds or None, owner=owner))
    if _json(ctx):
        # One compact row per line: tens of thousands of programs stay fast.
        click.echo("[" + ",\n".join(json.dumps(_row_json(r)) for r in rows) + "]")
        return
    cols = ExecRegion.columns()
    cells = [record_cells(r, cols) for r in rows]
    headers = [c.header for _, c in cols]
    if len(cells) <= 5000:
        click.echo(table(cells, headers, [c.align for _, c in cols]))
    else:  # tabulate costs too much per cell; the same look, streamed
        click.echo("\n".join(stream_table(cells, headers, tuple(i for i, (_, c) in enumerate(cols)
                                                                if c.align == "right"))))
    progs = sum(1 for r in rows if r.kind == "bpf-prog")
    mods = len({r.owner for r in rows if r.kind.startswith("module-")})
    click.echo(f"{len(rows)} region(s): {mods} module(s), {progs} BPF program(s), {len(m.packs)} pack(s)")


@exec_.command("packs", short_help="Each bpf_prog_pack: chunks used and free, its programs.",
               epilog=example("kcoretool -c vmcore exec packs"))
@click.pass_context
def packs(ctx: click.Context) -> None:
    """Each bpf_prog_pack: chunk size, used/free chunks, largest free run, its programs."""
    m = _model(ctx)
    if _json(ctx):
        emit_json([p.to_dict() for p in m.packs])
        return
    if not m.packs:
        click.echo("no bpf_prog_pack" + ("" if m.layout.prog_pack else " (this kernel has no pack allocator)"))
        return
    click.echo(table(
        [(hx(p.start), human(p.size), str(p.chunk_size), str(p.used_chunks), str(p.free_chunks),
          human(p.largest_free_run), str(len(p.free_runs())), str(len(p.progs)),
          str(sum((b - a) // p.chunk_size for a, b in p.unattributed)), hx(p.area)) for p in m.packs],
        ("PACK", "SIZE", "CHUNK", "USED", "FREE", "LARGEST FREE", "FREE RUNS", "PROGS", "UNATTRIBUTED", "AREA"),
        ("left", "right", "right", "right", "right", "right", "right", "right", "right", "left")))
    for p in m.packs:
        click.echo("")
        click.echo(f"pack {p.start:#x}:")
        lines = [(hx(x.start), human(x.size), f"{x.alloc_size // p.chunk_size}" if x.alloc_size else "-",
                  x.name, x.tag or "-", "-" if x.id is None else str(x.id), x.prog_type or "-") for x in p.progs]
        lines += [(hx(a), human(b - a), str(-(-(b - a) // p.chunk_size)), n, "-", "-", "image")
                  for a, b, n in p.images]
        lines += [(hx(a), human(b - a), str((b - a) // p.chunk_size), "(unattributed)", "-", "-", "-")
                  for a, b in p.unattributed]
        lines.sort(key=lambda t: int(t[0], 16))
        if lines:
            click.echo(table(lines, ("START", "SIZE", "CHUNKS", "NAME", "TAG", "ID", "TYPE"),
                             ("left", "right", "right", "left", "left", "right", "left")))
        else:
            click.echo("  (empty)")


@exec_.command("cache", short_help="The execmem ROX cache's areas and what is in them.",
               epilog=example("kcoretool -c vmcore exec cache --json"))
@click.pass_context
def cache(ctx: click.Context) -> None:
    """The execmem ROX cache (7.x with CONFIG_ARCH_HAS_EXECMEM_ROX): each
    area, its used and free bytes, and what is inside -- modules' text,
    kprobe and ftrace pages, whole bpf_prog_packs."""
    m = _model(ctx)
    pages = m.rox_cache()
    if _json(ctx):
        emit_json([p.to_dict() for p in pages])
        return
    if not pages:
        click.echo("no execmem ROX cache" + ("" if m.layout.rox_cache else " (this kernel has none)"))
        return
    click.echo(table(
        [(hx(p.start), human(p.used), human(p.free), human(p.largest_free),
          str(sum(r.kind not in ("free", "unattributed") for r in p.ranges)),
          str(sum(r.kind == "unattributed" for r in p.ranges))) for p in pages],
        ("AREA", "USED", "FREE", "LARGEST FREE", "OWNED", "UNATTRIBUTED"),
        ("left", "right", "right", "right", "right", "right")))
    for p in pages:
        click.echo("")
        click.echo(f"cache area {p.start:#x}:")
        rows = [(hx(r.alloc_start if r.alloc_start is not None else r.start), human(r.alloc_size), r.kind,
                 "-" if r.kind == "free" else ("(unattributed)" if r.kind == "unattributed" else r.owner),
                 "pending free" if r.detail.get("pending_free") else "") for r in p.ranges]
        click.echo(table(rows, ("START", "SIZE", "KIND", "OWNER", ""), ("left", "right", "left", "left", "left")))


@exec_.command("audit", short_help="Every executable page and its owner; flags what has none (exit 3).",
               epilog=example("kcoretool -c vmcore exec audit --json"))
@click.option("--census", is_flag=True, help="Also list every executable range with its owner.")
@click.pass_context
def audit(ctx: click.Context, census: bool) -> None:
    """Walk the kernel half of the page tables, give every executable page
    (or sub-page range) its owner -- kernel text, modules, BPF programs and
    packs, trampolines, kprobe and ftrace pages, the ROX cache -- and flag
    what has none or is wrong for its owner: unowned code, W+X, code not
    executable, data executable, pack space nobody owns, free JIT space
    without its trapping fill, BPF programs missing from prog_idr, modules
    hidden from the module list.  Exit status 3 when anything is flagged."""
    k = _kernel(ctx)
    _model(ctx)  # its warnings, once
    a = k.exec_audit()
    if _json(ctx):
        emit_json(a.to_dict())
    else:
        totals = a.totals()
        click.echo(table([(kind, human(n), str(n)) for kind, n in totals.items()], ("OWNER KIND", "SIZE", "BYTES"),
                         ("left", "right", "right")))
        if census:
            click.echo("")
            click.echo(table([(hx(c.start), hx(c.end), human(c.size), c.kind, c.owner, "W+X" if c.writable else "X",
                               human(c.page_size)) for c in a.census],
                             ("START", "END", "SIZE", "KIND", "OWNER", "RIGHTS", "PAGE"),
                             ("left", "left", "right", "left", "left", "left", "right")))
        if a.flags:
            click.echo("")
            click.echo(table([(f.reason, hx(f.start), hx(f.end), human(f.size), hx(f.area), f.caller or "-", f.detail)
                              for f in a.flags], ("REASON", "START", "END", "SIZE", "AREA", "CALLER", "WHAT"),
                             ("left", "left", "left", "right", "left", "left", "left")))
        for n in a.notes:
            click.echo(f"note: {n}")
        reasons = ", ".join(sorted({f.reason for f in a.flags}))
        click.echo(f"{human(a.executable_bytes)} executable in {len(a.runs)} run(s), {human(a.unowned_bytes)} unowned; "
                   f"{len(a.flags)} flag(s)" + (f": {reasons}" if a.flags else ""))
    if a.flags:
        ctx.exit(3)


def _pick(ctx: click.Context, owner: str, kind: Optional[str]) -> ExecRegion:
    """The region OWNER names: an address inside it, a BPF program's name or
    symbol, or a module (its text unless --kind)."""
    m = _model(ctx)
    addr = None
    try:
        addr = parse_address(owner)
    except KcoreToolError:
        pass
    if addr is not None:
        r = m.find(addr)
        if r is None:
            raise KcoreToolError(f"{addr:#x} is in no executable allocation; `kcoretool exec list` shows them")
        return r
    cands = [r for r in m.select(kinds=[kind] if kind else None, owner=owner)
             if r.kind not in ("free", "unattributed")]
    if not kind:
        mods = [r for r in cands if r.kind == "module-text"]
        cands = mods or [r for r in cands if not r.kind.startswith("module-")] or cands
    if not cands:
        raise KcoreToolError(f"no executable allocation owned by {owner!r}"
                             f"{' of kind ' + kind if kind else ''}; `kcoretool exec list` shows the owners")
    if len(cands) > 1:
        shown = ", ".join(f"{r.kind} {r.start:#x}" for r in cands[:4])
        raise KcoreToolError(f"{owner!r} names {len(cands)} allocations ({shown}{', ...' if len(cands) > 4 else ''}); "
                             "give --kind or an address inside one")
    return cands[0]


@exec_.command("dump", short_help="Write a JIT image or module region to a file.",
               epilog=example("kcoretool -c vmcore exec dump my_filter -o my_filter.bin"))
@click.argument("owner")
@click.option("-o", "--output", metavar="FILE", required=True, help="Where to write the bytes ('-' for stdout).")
@click.option("--kind", metavar="KIND", help="Which region of a module (default module-text).")
@click.pass_context
def dump(ctx: click.Context, owner: str, output: str, kind: Optional[str]) -> None:
    """Write one BPF program's JIT image (or a module region, or the
    allocation containing an address) to FILE, with what each page was."""
    from kcoretool.cli.readcmds import describe_zero_runs, summary_text

    k = _kernel(ctx)
    r = _pick(ctx, owner, kind)
    # Atomic, 0600 when new; a device or FIFO is written in place (kcoretool._outfile).
    with OutputFile(output) as out:
        _, report = k.read(r.start, r.size, out)
    if _json(ctx):
        d = report.to_dict()
        d["region"] = _row_json(r)
        click.echo(json.dumps(d, indent=2), err=output == "-")
        return
    what = f"{r.kind} {r.owner}" + (f" (tag {r.tag}, id {r.id})" if r.tag else "")
    click.echo(f"kcoretool: {output}: {r.size} bytes of {what} {r.start:#x}-{r.end:#x}: {summary_text(report)}",
               err=True)
    for line in describe_zero_runs(report):
        click.echo(line, err=True)
