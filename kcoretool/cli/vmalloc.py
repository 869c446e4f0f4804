# SPDX-License-Identifier: LGPL-2.1-or-later
"""
``kcoretool vmalloc`` and ``kcoretool whatis``
----------------------------------------------

Thin click commands over :class:`kcoretool.api.Kernel`: list, show, blocks,
free, stats and whatis. Global options come from ``ctx.obj`` (core_path,
vmlinux, json, debug); errors are :class:`~kcoretool.errors.KcoreToolError`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import click

from kcoretool.api import KINDS, Kernel, VmallocModel, VmapBlock, check_kinds, iter_rows_json, row_getter
from kcoretool.cli.options import example
from kcoretool.cli.output import emit_json, human, parse_address, parse_size, stream_table, table
from kcoretool.errors import AddressError, ArgumentError

__all__ = ("vmalloc", "whatis")

_SORTS = ("start", "size", "pages", "kind", "caller")
_FORMATS = ("table", "json", "vmallocinfo")


def _obj(ctx: click.Context) -> Any:
    return ctx.find_root().obj


def _kernel(ctx: click.Context) -> Kernel:
    return _obj(ctx).kernel()


def _model(ctx: click.Context) -> VmallocModel:
    o = _obj(ctx)
    m = _kernel(ctx).vmalloc()
    if not o.warned:
        o.warned = True
        if getattr(o, "debug", False):
            for w in m.warnings:
                click.echo(f"kcoretool: warning: {w}", err=True)
        elif m.warnings:
            click.echo(
                f"kcoretool: warning: {len(m.warnings)} problem(s) walking kernel "
                f"structures; first: {m.warnings[0]} (--debug shows all)",
                err=True,
            )
    return m


def _json_wanted(ctx: click.Context, fmt: Optional[str] = None) -> bool:
    return fmt == "json" or (fmt in (None, "table") and bool(getattr(_obj(ctx), "json", False)))


def _addr(text: str, ctx: click.Context) -> int:
    """ADDRESS as a number or SYMBOL[+OFF] (resolved in the kernel's symbols)."""
    # The kernel is opened only for a symbol: a bad number is the user's
    # typo, not a missing-debug-info problem.
    return parse_address(text, lambda name: _kernel(ctx).symbol_address(name),
                         "the kernel has no such symbol; give a numeric address")


def _echo_stream(chunks: Iterable[str]) -> None:
    for c in chunks:  # chunks are thousands of rows: click.echo's cost is noise
        click.echo(c, nl=False)
    click.echo("")


@click.group("vmalloc", short_help="vmap areas, blocks, free space; read them.",
               epilog=example("kcoretool -c vmcore vmalloc stats"))
def vmalloc() -> None:
    """vmalloc areas, vmap blocks, lazy areas and free space, and reading
    them.  Types and symbols come from a vmlinux or, without one, from the
    kernel's own BTF and kallsyms (see kcoretool --help)."""


def _parse_range(text: str, ctx: click.Context) -> Tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not sep:
        raise click.BadParameter("use A-B, e.g. 0xffffc90000000000-0xffffc90100000000")
    a, b = _addr(lo, ctx), _addr(hi, ctx)
    if a >= b:
        raise click.BadParameter(f"{text}: the range is empty or reversed; give A-B with A below B",
                                 param_hint="--range")
    return a, b


@vmalloc.command("list", short_help="Busy areas, one per line.",
               epilog=example("kcoretool -c vmcore vmalloc list --caller 'kvmalloc*' --sort size --reverse"))
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only these kinds (repeatable): " + ", ".join(KINDS) + ".")
@click.option("--caller", metavar="GLOB", help="Caller symbol glob, e.g. 'kvmalloc*'.")
@click.option("--min-size", metavar="SIZE", help="Only areas at least this big (4096, 0x1000, 4K).")
@click.option("--range", "addr_range", metavar="A-B", help="Only areas overlapping [A, B).")
@click.option("--sort", "sort_key", type=click.Choice(_SORTS), default="start", show_default=True,
              help="Order by start address, size, pages, kind or caller symbol.")
@click.option("--reverse", is_flag=True, help="Reverse the sort.")
@click.option("--lazy", "with_lazy", is_flag=True, help="Include lazy (unpurged) and pooled areas.")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default=None, show_default="table",
              help="table, json (as --json), or vmallocinfo (this kernel's /proc/vmallocinfo).")
@click.pass_context
def list_(ctx: click.Context, kinds: Tuple[str, ...], caller: Optional[str], min_size: Optional[str],
          addr_range: Optional[str], sort_key: str, reverse: bool, with_lazy: bool, fmt: Optional[str]) -> None:
    """List busy vmap areas: start, end, size, kind, pages, caller, flags."""
    if fmt not in (None, "json") and getattr(_obj(ctx), "json", False):
        raise click.UsageError(f"--json and --format {fmt} ask for different outputs; give one")
    try:
        check_kinds(kinds, KINDS)
    except ArgumentError as e:
        raise click.BadParameter(str(e), param_hint="--kind") from None
    m = _model(ctx)
    if fmt == "vmallocinfo":
        if kinds or caller or min_size or addr_range:
            raise click.UsageError("--format vmallocinfo prints the whole file; drop the filters")
        warnings: List[str] = []
        lines = _kernel(ctx).vmallocinfo_lines(warnings)
        for w in warnings:
            click.echo(f"kcoretool: warning: {w}", err=True)
        for line in lines:
            click.echo(line)
        return
    lo = hi = None
    if addr_range:
        lo, hi = _parse_range(addr_range, ctx)
    ps = m.page_size
    size_floor = parse_size(min_size, "--min-size") if min_size is not None else 0

    def selected() -> Iterator[Tuple[Any, ...]]:
        # Rows, not Area objects: a million areas are listed without building them.
        return m.select_rows(kinds=kinds or None, caller=caller, min_size=size_floor, lo=lo, hi=hi,
                             include_lazy=with_lazy)

    rows: Iterable[Tuple[Any, ...]] = selected()
    kind_of = row_getter("kind")
    if sort_key != "start" or reverse:
        rows = sorted(rows, key=_sort_key(sort_key, ps), reverse=reverse)
        has_exec = any(kind_of(r) == "exec" for r in rows)
    else:
        has_exec = m.has_kind("exec") and any(kind_of(r) == "exec" for r in selected())
    # Who owns the exec areas (module, bpf_prog_pack, ...): only walked when listed.
    owners = _kernel(ctx).exec_memory().area_owners() if has_exec else {}
    if _json_wanted(ctx, fmt):
        # Streamed, one row per line: a million areas never sit in memory as
        # dicts, and indent=2 would triple the encoding time.
        _echo_stream(iter_rows_json(rows, ps, owners=owners))
        return
    out = []
    pick = row_getter(*_LIST_FIELDS)
    for start, end, kind, va_flags, vm_struct, flag_names, nr_pages, caller, caller_symbol in map(pick, rows):
        has_vm = vm_struct is not None
        out.append((
            f"{start:#x}", f"{end:#x}", human(end - start), kind,
            str(nr_pages if has_vm else (end - start) // ps),
            (caller_symbol or f"{caller:#x}") if has_vm else "-",
            "|".join(n.replace("VM_", "") for n in flag_names) if has_vm
            else (f"va:{va_flags:#x}" if va_flags else "-"),
        ) + ((owners.get(start, "-"),) if owners else ()))
    headers = ("START", "END", "SIZE", "KIND", "PAGES", "CALLER", "FLAGS") + (("OWNER",) if owners else ())
    if len(out) <= 5000:
        align = ("left", "left", "right", "left", "right", "left", "left", "left")[:len(headers)]
        click.echo(table(out, headers, align))
    else:
        _echo_stream(("\n" if i else "") + line
                     for i, line in enumerate(stream_table(out, headers, (2, 4))))
    click.echo(f"{len(out)} area(s); layout {m.layout.label}")


# The fields the table shows, by name.
_LIST_FIELDS = ("start", "end", "kind", "va_flags", "vm_struct", "flag_names", "nr_pages", "caller", "caller_symbol")


def _sort_key(sort_key: str, ps: int) -> Callable[[Tuple[Any, ...]], Any]:
    """``--sort``'s key function of rows."""
    get = row_getter("start", "end", "kind", "vm_struct", "nr_pages", "caller_symbol")

    def key(r: Tuple[Any, ...]) -> Any:
        start, end, kind, vm_struct, nr_pages, caller_symbol = get(r)
        if sort_key == "size":
            return end - start
        if sort_key == "pages":
            return nr_pages if vm_struct is not None else (end - start) // ps
        if sort_key == "kind":
            return (kind, start)
        if sort_key == "caller":
            return (caller_symbol or "", start)
        return start

    return key


@vmalloc.command("show", short_help="Everything about one area.",
               epilog=example("kcoretool -c vmcore vmalloc show 0xffffc90000100000 --pages"))
@click.argument("address")
@click.option("--pages", "with_pages", is_flag=True, help="Also list the physical address of each page.")
@click.pass_context
def show(ctx: click.Context, address: str, with_pages: bool) -> None:
    """Everything about the area containing ADDRESS."""
    m = _model(ctx)
    addr = _addr(address, ctx)
    a = m.find(addr)
    if a is None:
        raise AddressError(f"{addr:#x} is in no vmap area (busy, lazy or pooled)", addr)
    d = a.to_dict(m.page_size)
    # the keys of `vmalloc list --json`'s row, the owner too (null if none)
    owners = _kernel(ctx).exec_memory().area_owners() if a.kind == "exec" else {}
    d["owner"] = owners.get(a.start)
    d["offset"] = addr - a.start
    d["vm"] = a.vm.to_dict() if a.vm is not None else None
    b = m.block_of(a)
    d["block"] = b.to_dict(m.page_size) if b is not None else None
    if with_pages and a.vm is not None:
        d["vm"]["page_phys"] = _kernel(ctx).page_physaddrs(a.vm)
    if _json_wanted(ctx):
        emit_json(d)
        return
    lines = [
        f"area        {a.start:#x}-{a.end:#x}  ({human(a.size)}, offset {addr - a.start:#x})",
        f"kind        {a.kind}{'  (lazy: freed, not yet purged)' if a.lazy else ''}",
        f"vmap_area   {a.vmap_area:#x}" + (f"  flags {a.va_flags:#x}" if a.va_flags is not None else ""),
    ]
    if a.node is not None:
        lines.append(f"vmap node   {a.node}" + (f" (pool of node {a.flags_node_id})"
                                                if a.flags_node_id is not None else ""))
    vm = a.vm
    if vm is not None:
        lines += [
            f"vm_struct   {vm.address:#x}",
            f"  addr      {vm.addr:#x}  size {vm.size} ({human(vm.size)})",
            f"  flags     {vm.flags:#x} {' '.join(vm.flag_names)}",
            f"  nr_pages  {vm.nr_pages}" + (f"  page_order {vm.page_order}" if vm.page_order else ""),
            f"  caller    {vm.caller:#x} {vm.caller_symbol or ''}",
        ]
        if vm.phys_addr:
            lines.append(f"  phys_addr {vm.phys_addr:#x}")
        if vm.requested_size is not None:
            lines.append(f"  requested {vm.requested_size}")
        if with_pages:
            phys = d["vm"]["page_phys"]
            lines.append("  pages     " + " ".join(f"{p:#x}" for p in phys[:64])
                         + (" ..." if len(phys) > 64 else ""))
    if b is not None:
        lines += _block_lines(b, m.page_size)
    click.echo("\n".join(lines))


def _block_lines(b: VmapBlock, ps: int) -> List[str]:
    used = b.used_pages()
    out = [
        f"vmap_block  {b.address:#x}  cpu {b.cpu if b.cpu is not None else '?'}"
        + (f" ({b.cpu_source})" if b.cpu_source else ""),
        f"  pages     {b.bits}: used {used if used is not None else '?'} ({b.used_source}),"
        f" free {b.free}, dirty {b.dirty}"
        + (f" [{b.dirty_min}, {b.dirty_max})" if b.dirty_max > b.dirty_min else ""),
    ]
    for s, e in b.pieces(ps):
        out.append(f"  piece     {s:#x}-{e:#x}  ({(e - s) // ps} pages)")
    for n in b.notes:
        out.append(f"  note      {n}")
    return out


@vmalloc.command("blocks", short_help="vmap blocks and their pieces, per CPU.",
               epilog=example("kcoretool -c vmcore vmalloc blocks"))
@click.pass_context
def blocks(ctx: click.Context) -> None:
    """vmap blocks (per-CPU vm_map_ram sub-allocators) and their pieces."""
    m = _model(ctx)
    ps = m.page_size
    if _json_wanted(ctx):
        emit_json([b.to_dict(ps) for b in m.blocks])
        return
    rows = []
    for b in m.blocks:
        used = b.used_pages()
        rows.append((
            f"{b.start:#x}", f"{b.cpu}" if b.cpu is not None else "?",
            str(b.bits), str(used) if used is not None else "?", str(b.free), str(b.dirty),
            f"[{b.dirty_min},{b.dirty_max})" if b.dirty_max > b.dirty_min else "-",
            " ".join(f"{(s - b.start) // ps}+{(e - s) // ps}" for s, e in b.pieces(ps)) or "-",
            b.used_source,
        ))
    click.echo(table(rows, ("START", "CPU", "PAGES", "USED", "FREE", "DIRTY", "DIRTY RANGE",
                             "PIECES (page+len)", "SOURCE")))
    notes = sorted({n for b in m.blocks for n in b.notes})
    for n in notes:
        click.echo(f"note: {n}")
    click.echo(f"{len(m.blocks)} block(s); layout {m.layout.label}")


@vmalloc.command("free", short_help="Free holes; where would SIZE fit.",
               epilog=example("kcoretool -c vmcore vmalloc free --fits 64M"))
@click.option("--fits", metavar="SIZE", help="Where would an allocation of SIZE bytes go?")
@click.option("--align", metavar="A", default=None, help="Alignment for --fits (default PAGE_SIZE).")
@click.option("--all", "show_all", is_flag=True, help="List every hole.")
@click.pass_context
def free(ctx: click.Context, fits: Optional[str], align: Optional[str], show_all: bool) -> None:
    """Free holes of the vmalloc range: largest hole, histogram, --fits."""
    if align is not None:
        al = parse_size(align, "--align")
        if al <= 0 or al & (al - 1):
            raise click.BadParameter(f"{align}: an alignment is a power of two (4096, 2M, ...)",
                                     param_hint="--align")
    m = _model(ctx)
    holes = m.vmalloc_holes()
    hist = m.hole_histogram(holes)
    total = sum(h.size for h in holes)
    largest = max(holes, key=lambda h: h.size, default=None)
    res: Dict[str, Any] = {
        "vmalloc_start": m.vmalloc_start, "vmalloc_end": m.vmalloc_end,
        "source": "free_vmap_area_list" if m.holes is not None else "gaps between areas",
        "holes": len(holes), "free": total,
        "largest": largest.to_dict() if largest else None,
        "histogram": {str(k): v for k, v in hist.items()},
    }
    if fits:
        size = parse_size(fits, "--fits")
        al = parse_size(align, "--align") if align else 0
        found = m.fits(size, al, holes)
        res["fits"] = {"size": size, "align": max(al, m.page_size),
                       "candidates": [{"hole": h.to_dict(), "address": a} for h, a in found[:20]],
                       "count": len(found)}
    if show_all:
        res["all"] = [h.to_dict() for h in holes]
    if _json_wanted(ctx):
        emit_json(res)
        return
    click.echo(f"vmalloc range {m.vmalloc_start:#x}-{m.vmalloc_end:#x}: {len(holes)} hole(s), "
               f"{human(total)} free ({res['source']})")
    if largest:
        click.echo(f"largest hole  {largest.start:#x}-{largest.end:#x} ({human(largest.size)})")
    click.echo(table([(f">= {human(k)}", str(v)) for k, v in hist.items()], ("HOLE SIZE", "COUNT"),
                      ("left", "right")))
    if fits:
        f = res["fits"]
        if f["count"]:
            h0 = f["candidates"][0]
            click.echo(f"{human(f['size'])} (align {human(f['align'])}) fits in {f['count']} hole(s);"
                       f" the lowest fit is {h0['address']:#x}")
        else:
            click.echo(f"{human(f['size'])} (align {human(f['align'])}) fits in no hole")
    if show_all:
        click.echo(table([(f"{h.start:#x}", f"{h.end:#x}", human(h.size)) for h in holes],
                          ("START", "END", "SIZE")))


@vmalloc.command("stats", short_help="Totals by kind and caller; lazy pages.",
               epilog=example("kcoretool -c vmcore vmalloc stats --top 5"))
@click.option("--top", default=15, show_default=True, help="How many callers to show.")
@click.pass_context
def stats(ctx: click.Context, top: int) -> None:
    """Totals by kind and caller, lazy pages vs lazy_max_pages(), range usage."""
    m = _model(ctx)
    st = m.stats()
    if _json_wanted(ctx):
        emit_json(st)
        return
    click.echo(f"layout {m.layout.label}; {st['areas']} busy area(s)")
    click.echo(table(
        [(k, str(v["count"]), human(v["size"]), str(v["pages"])) for k, v in st["by_kind"].items()],
        ("KIND", "AREAS", "SIZE", "PAGES"), ("left", "right", "right", "right")))
    click.echo()
    click.echo(table(
        [(k, str(v["count"]), human(v["size"]), str(v["pages"]))
         for k, v in list(st["by_caller"].items())[:top]],
        ("CALLER", "AREAS", "SIZE", "PAGES"), ("left", "right", "right", "right")))
    lz = st["lazy"]
    click.echo()
    click.echo(f"lazy: {lz['areas']} area(s), {lz['pages']} page(s); vmap_lazy_nr "
               f"{lz['vmap_lazy_nr'] if lz['vmap_lazy_nr'] is not None else '?'} of lazy_max_pages "
               f"{lz['lazy_max_pages'] if lz['lazy_max_pages'] is not None else '?'} "
               "(a purge runs above it)")
    if st["pooled"]["areas"]:
        click.echo(f"pooled: {st['pooled']['areas']} purged area(s) cached for reuse, "
                   f"{human(st['pooled']['size'])}")
    vr = st["vmalloc_range"]
    click.echo(f"vmalloc range: {human(vr['used'])} used by busy areas, {human(vr['free'])} free "
               f"in {vr['holes']} hole(s), largest {human(vr['largest_hole'])}")
    click.echo(f"module range: {human(st['modules_range']['used'])} used")
    click.echo(f"vmap blocks: {st['blocks']}")


@click.command("whatis", short_help="Which area, module, stack or page ADDR is.",
               epilog=example("kcoretool -c vmcore whatis 0xffffc90000101010"))
@click.argument("address")
@click.option("--pid", type=int, default=None, help="ADDRESS is a user address of this process.")
@click.pass_context
def whatis(ctx: click.Context, address: str, pid: Optional[int]) -> None:
    """What is ADDRESS: vmalloc area, block piece, module, task stack, direct map, symbol;
    with --pid, the process's VMA and page."""
    if pid is not None:
        from kcoretool.cli.task import whatis_user

        whatis_user(ctx, pid, parse_address(address))
        return
    addr = _addr(address, ctx)
    _model(ctx)  # its warnings, once
    res = _kernel(ctx).whatis(addr)
    if _json_wanted(ctx):
        emit_json(res.to_dict())
        return
    for line in res.lines():
        click.echo(line)
