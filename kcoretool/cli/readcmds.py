"""Commands that read memory: ``read`` (through the core's segments, or the
page tables for vmalloc memory), ``vmalloc dump``, ``vmalloc extract`` and
``vmalloc check``."""

from __future__ import annotations

import hashlib
import json
import re
from typing import BinaryIO, Dict, List, Optional, Tuple

import click

from kcoretool._outfile import OutputDir, OutputFile
from kcoretool.api import (
    DEFECTS,
    KINDS,
    PAGE_STATES,
    ZERO_STATES,
    Area,
    Kernel,
    ReadReport,
    check_range,
    needs_pagetables,
    summarize,
)
from kcoretool.cli.options import ProgressSink, byte_progress, check_kind_option, example, item_progress
from kcoretool.cli.output import HexdumpWriter, emit_json, hx, json_limit, parse_address, parse_size, table
from kcoretool.cli.words import cli_words
from kcoretool.errors import AddressError, KcoreToolError

# Big reads go out in pieces so memory stays bounded.
CHUNK = 1 << 20

# Kinds `extract` reads unless --kind says otherwise: everything with data.
DEFAULT_EXTRACT_KINDS = ("vmalloc", "vmap", "exec", "user-mapped", "dma-coherent", "vm_map_ram", "vmap_block")
# Kinds `check` compares: what vread reads, plus lazy areas (holes to it).
CHECK_KINDS = ("vmalloc", "vmap", "exec", "user-mapped", "dma-coherent", "vm_map_ram", "vmap_block", "lazy")


def kernel_of(ctx: click.Context) -> Kernel:
    return ctx.find_root().obj.kernel()


def kernel_address(ctx: click.Context, text: str) -> int:
    """ADDRESS with symbols from the kernel's symbol table."""
    return parse_address(text, lambda name: kernel_of(ctx).symbol_address(name),
                         "the kernel's symbol table has no such symbol; give a numeric address")


def describe_zero_runs(report: ReadReport, physical_note: str = "") -> List[str]:
    """One line per zero-filled run: a zero page is never shown as data
    without saying so."""
    lines = []
    for r in report.zero_runs():
        pages = max(1, (r.size + 4095) // 4096)
        lines.append(f"kcoretool: note: {r.vaddr:#x}-{r.vaddr + r.size:#x} ({pages} page"
                     f"{'s' if pages != 1 else ''}) read as zeros: {r.state} -- {cli_words(PAGE_STATES[r.state])}")
    return lines


def summarize_zero_runs(report: ReadReport, hint: str = " \u2014 `--map` lists the runs") -> List[str]:
    """One note for all zero-filled runs, by state: a 128 MiB read has
    hundreds of runs, and one line per run drowns the output."""
    zero = {s: n for s, n in report.pages_by_state().items() if s in ZERO_STATES}
    if not zero:
        return []
    parts = [f"{n} page{'s' if n != 1 else ''} {s}" if i == 0 else f"{n} {s}"
             for i, (s, n) in enumerate(zero.items())]
    return [f"kcoretool: note: zero-filled: {', '.join(parts)}{hint}"]


def map_table(report: ReadReport) -> str:
    rows = [(hx(r.vaddr), hx(r.vaddr + r.size), r.size, r.state, hx(r.phys), hx(r.area)) for r in report.runs]
    return table(rows, ["start", "end", "bytes", "state", "phys", "area"],
                 colalign=("right", "right", "right", "left", "right", "right"))


def summary_text(report: ReadReport) -> str:
    pages = report.pages_by_state()
    return ", ".join(f"{state} {n}" for state, n in pages.items()) + (
        f"; {report.retries} retr{'y' if report.retries == 1 else 'ies'}" if report.retries else "")


def read_via_reader(ctx: click.Context, addr: int, size: int, output: Optional[str], via: str,
                    show_map: bool, force_io: bool, sparse: bool) -> None:
    """`read` through the page tables (or the live kernel's vread)."""
    k = kernel_of(ctx)
    opts = ctx.find_root().obj
    data: Optional[bytes] = None
    if output is not None:
        with OutputFile(output) as out, byte_progress(size, "reading") as bar:
            _, report = k.read(addr, size, ProgressSink(out, bar), via=via, force_io=force_io,
                               sparse=sparse)
    elif opts.json:
        json_limit(size)
        data, report = k.read(addr, size, via=via, force_io=force_io, sparse=sparse)
    elif show_map:
        _, report = k.read(addr, size, _Discard(), via=via, force_io=force_io, sparse=sparse)
    else:
        # Streamed: any length, repeated lines collapsed to `*`.
        dump = HexdumpWriter(addr)
        _, report = k.read(addr, size, dump, via=via, force_io=force_io, sparse=sparse)
        dump.close()
    if opts.json:
        d = report.to_dict()
        if data is not None:
            d["data"] = data.hex()
        emit_json(d)
        return
    if show_map:
        click.echo(map_table(report))
    for line in describe_zero_runs(report) if show_map else summarize_zero_runs(report):
        click.echo(line, err=True)


@click.command(short_help="Hexdump or raw bytes of kernel memory.",
               epilog=example("kcoretool -c vmcore read --map 0xffffc90000100000 0x4000"))
@click.argument("address")
@click.argument("length", required=False, default="256")
@click.option("-o", "--output", metavar="FILE", help="Write raw bytes to FILE ('-' for stdout) instead of a hexdump.")
@click.option("--physical", is_flag=True, help="ADDRESS is a physical address.")
@click.option("--via", type=click.Choice(["auto", "elf", "pagetable", "kcore"]), default="auto", show_default=True,
              help="elf: the core's segments; pagetable: the kernel's page tables with vmalloc semantics "
                   "(types from DWARF or BTF); kcore: the live kernel's own vread; auto: pagetable for vmalloc "
                   "and module addresses the segments do not hold as plain memory, elf otherwise.")
@click.option("--map", "show_map", is_flag=True, help="Print the runs of page states instead of a hexdump.")
@click.option("--force-io", is_flag=True, help="Read ioremap areas (device memory) too.")
@click.option("--sparse", is_flag=True, help="Read the present pages of VM_SPARSE areas.")
@click.option("--pid", type=int, default=None, help="ADDRESS is in this process's memory (its page tables).")
@click.pass_context
def read(ctx: click.Context, address: str, length: str, output: Optional[str], physical: bool, via: str,
         show_map: bool, force_io: bool, sparse: bool, pid: Optional[int]) -> None:
    """Read LENGTH bytes (default 256) at ADDRESS: hex (0x... or with a-f),
    decimal, or SYMBOL+OFF for symbols VMCOREINFO lists; with --pid, in
    that process's memory."""
    if pid is not None:
        from kcoretool.cli.task import read_user

        if physical or via not in ("auto", "pagetable"):
            raise click.UsageError("--pid reads go through the task's page tables; drop --physical/--via")
        read_user(ctx, pid, parse_address(address), parse_size(length, "LENGTH"), output, show_map)
        return
    core = ctx.obj.core()
    symbols = core.vmcoreinfo.symbol if core.vmcoreinfo is not None else None
    try:
        addr = parse_address(address, symbols)
    except KcoreToolError:
        if physical or via == "elf" or not _looks_like_symbol(address):
            raise  # a number that is not one is a typo: no need for the kernel's symbols
        addr = kernel_address(ctx, address)  # the kernel's own symbol table
    size = parse_size(length, "LENGTH")
    check_range(addr, size)
    if physical and via not in ("auto", "elf"):
        raise click.UsageError("--physical reads go through the core's segments; drop --via")
    if not physical and (via in ("pagetable", "kcore") or (via == "auto" and needs_pagetables(core, addr))):
        read_via_reader(ctx, addr, size, output, "kcore" if via == "kcore" else "pagetable",
                        show_map, force_io, sparse)
        return
    zero_runs: List[Tuple[int, int]] = []
    cut_runs: List[Tuple[int, int]] = []
    if output is not None:
        with OutputFile(output) as out, byte_progress(size, "reading") as bar:
            for pos in range(addr, addr + size, CHUNK):
                res = core.read_ex(pos, min(CHUNK, addr + size - pos), physical)
                out.write(res.data)
                bar.update(len(res.data))
                zero_runs += res.zero_filled
                cut_runs += res.truncated
    elif ctx.obj.json:
        json_limit(size)
        res = core.read_ex(addr, size, physical)
        emit_json({"address": addr, "physical": physical, "length": len(res.data),
                   "data": res.data.hex(),
                   "zero_filled": [{"address": a, "length": n} for a, n in res.zero_filled],
                   **({"truncated": [{"address": a, "length": n} for a, n in res.truncated]}
                      if res.truncated else {})})
        return
    else:
        dump = HexdumpWriter(addr)
        for pos in range(addr, addr + size, CHUNK):
            res = core.read_ex(pos, min(CHUNK, addr + size - pos), physical)
            dump.write(res.data)
            zero_runs += res.zero_filled
            cut_runs += res.truncated
        dump.close()
    for line in _segment_zero_notes(zero_runs, cut_runs, physical):
        click.echo(line, err=True)


def _segment_zero_notes(zero_runs: List[Tuple[int, int]], cut_runs: List[Tuple[int, int]],
                        physical: bool) -> List[str]:
    """Notes for bytes the file lacks: one per run, or one in all for many."""
    space = "physical" if physical else "virtual"
    if len(zero_runs) + len(cut_runs) > 4:
        parts = []
        if zero_runs:
            parts.append(f"{sum(n for _, n in zero_runs)} bytes in {len(zero_runs)} runs are not in the file "
                         "(excluded from the dump)")
        if cut_runs:
            parts.append(f"{sum(n for _, n in cut_runs)} bytes in {len(cut_runs)} runs lie past the end of "
                         "the truncated dump")
        return [f"kcoretool: note: {'; '.join(parts)}; they read as zeros"]
    lines = [f"kcoretool: note: {n} bytes at {space} {a:#x} are not in the file (excluded from the dump) "
             "and read as zeros" for a, n in zero_runs]
    lines += [f"kcoretool: note: {n} bytes at physical {a:#x} lie past the end of the truncated dump and "
              "read as zeros (truncated)" for a, n in cut_runs]
    return lines


def _looks_like_symbol(text: str) -> bool:
    return bool(re.match(r"^\s*[A-Za-z_.$][A-Za-z0-9_.$]*\s*(\+|$)", text)) and not re.match(
        r"^\s*[0-9a-fA-F]+\s*$", text)


def _area_for(ctx: click.Context, address: str) -> Area:
    k = kernel_of(ctx)
    addr = kernel_address(ctx, address)
    area = k.vmalloc().find(addr)
    if area is None:
        raise AddressError(f"{addr:#x} is in no vmap area; `kcoretool vmalloc list` shows them", addr)
    return area


@click.command("dump", short_help="Write one whole area to a file.",
               epilog=example("kcoretool vmalloc dump 0xffffc90000100000 -o area.bin"))
@click.argument("address")
@click.option("-o", "--output", metavar="FILE", required=True, help="Where to write the area ('-' for stdout).")
@click.option("--with-guard", is_flag=True, help="Include the trailing guard page (zeros).")
@click.option("--force-io", is_flag=True, help="Read ioremap areas (device memory) too.")
@click.option("--sparse", is_flag=True, help="Read the present pages of VM_SPARSE areas.")
@click.pass_context
def dump(ctx: click.Context, address: str, output: str, with_guard: bool, force_io: bool, sparse: bool) -> None:
    """Write the whole area containing ADDRESS to FILE, and say what each page was."""
    k = kernel_of(ctx)
    area = _area_for(ctx, address)
    ps = k.vmalloc().page_size
    lo, hi = (area.start, area.end) if with_guard else area.data_span(ps)
    with OutputFile(output) as out, byte_progress(hi - lo, "dumping") as bar:
        _, report = k.read(lo, hi - lo, ProgressSink(out, bar), force_io=force_io, sparse=sparse)
    if ctx.find_root().obj.json:
        d = report.to_dict()
        d["area"] = area.to_dict()
        click.echo(json.dumps(d, indent=2), err=output == "-")
        return
    caller = area.vm.caller_symbol if area.vm is not None else None
    click.echo(f"kcoretool: {output}: {hi - lo} bytes of {area.kind} area {area.start:#x}-{area.end:#x}"
               f"{' (' + caller + ')' if caller else ''}: {summary_text(report)}", err=True)
    for line in summarize_zero_runs(report, hint=" \u2014 `read --map` lists the runs"):
        click.echo(line, err=True)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)[:80]


@click.command("extract", short_help="One file per area, with a manifest.",
               epilog=example("kcoretool -c vmcore vmalloc extract --kind vm_map_ram -o out/"))
@click.option("-o", "--output", "outdir", metavar="DIR", required=True, help="Directory for one file per area.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only these kinds (repeatable; default: " + ", ".join(DEFAULT_EXTRACT_KINDS) + ").")
@click.option("--caller", metavar="GLOB", help="Caller symbol glob, e.g. 'module_alloc*'.")
@click.option("--min-size", metavar="SIZE", help="Only areas at least this big.")
@click.option("--range", "addr_range", metavar="A-B", help="Only areas overlapping [A, B).")
@click.option("--force-io", is_flag=True, help="Read ioremap areas (device memory) too.")
@click.option("--sparse", is_flag=True, help="Read the present pages of VM_SPARSE areas.")
@click.pass_context
def extract(ctx: click.Context, outdir: str, kinds: Tuple[str, ...], caller: Optional[str],
            min_size: Optional[str], addr_range: Optional[str], force_io: bool, sparse: bool) -> None:
    """Write each selected area to DIR, with a manifest.json (area, kind,
    caller, sha256, what each page was)."""
    check_kind_option(kinds, KINDS)
    k = kernel_of(ctx)
    model = k.vmalloc()
    lo = hi = None
    if addr_range:
        a, sep, b = addr_range.partition("-")
        if not sep:
            raise click.BadParameter("use A-B", param_hint="--range")
        lo, hi = kernel_address(ctx, a), kernel_address(ctx, b)
        if lo >= hi:
            raise click.BadParameter(f"{addr_range}: the range is empty or reversed; give A-B with A below B",
                                     param_hint="--range")
    floor = parse_size(min_size, "--min-size") if min_size is not None else 0
    selected = list(model.select(kinds=kinds or DEFAULT_EXTRACT_KINDS, caller=caller, min_size=floor, lo=lo, hi=hi))
    if "ioremap" in (kinds or ()) and not force_io:
        click.echo("kcoretool: note: ioremap areas are written as zeros without --force-io", err=True)
    reader = k.reader(force_io=force_io, sparse=sparse)
    manifest: List[Dict[str, object]] = []
    totals: Dict[str, int] = {}
    # Each file appears whole or not at all; manifest.json comes last and
    # lists only files already in place; a failed run removes them all.
    with OutputDir(outdir) as out_dir, item_progress(selected, "extracting") as bar:
        for area in bar:
            start, end = area.data_span(model.page_size)
            caller_sym = area.vm.caller_symbol if area.vm is not None else None
            name = (f"{area.start:016x}-{area.kind}"
                    + (f"-{_safe(caller_sym.split('+')[0])}" if caller_sym else "") + ".bin")
            digest = hashlib.sha256()
            with out_dir.file(name) as f:
                report = reader.read(start, end - start, _HashingSink(f, digest))
            pages = report.pages_by_state(model.page_size)
            for state, n in pages.items():
                totals[state] = totals.get(state, 0) + n
            manifest.append({
                "file": name, "start": area.start, "end": area.end, "read_start": start, "read_end": end,
                "kind": area.kind, "caller": caller_sym, "sha256": digest.hexdigest(),
                "pages": pages, "retries": report.retries,
                "zero_runs": [r.to_dict() for r in report.zero_runs()],
            })
        with out_dir.file("manifest.json") as mf:
            mf.write(json.dumps({"core": ctx.find_root().obj.core_path, "release": model.release,
                                 "areas": manifest, "pages": totals}, indent=1).encode())
    if ctx.find_root().obj.json:
        emit_json({"directory": outdir, "areas": len(manifest), "pages": totals})
    else:
        click.echo(f"{len(manifest)} area(s) written to {outdir}: "
                   + ", ".join(f"{s} {n}" for s, n in totals.items()) + " page(s)")


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


class _HashingSink:
    def __init__(self, f: BinaryIO, digest: hashlib._Hash) -> None:
        self.f, self.digest = f, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.f.write(data)


@click.command("check", short_help="Live: /proc/kcore vs the page tables.",
               epilog=example("kcoretool vmalloc check --kind vmap_block"))
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only these kinds (default: " + ", ".join(CHECK_KINDS) + ").")
@click.pass_context
def check(ctx: click.Context, kinds: Tuple[str, ...]) -> None:
    """Live only: read every area through /proc/kcore and through the page
    tables, and name the kernel defect behind each page that differs.
    Exit status 3 when any page differs."""
    core = ctx.find_root().obj.core()
    if core.kind != "kcore" or not core.is_live:
        # Decided before any debug info is loaded: a vmcore has no vread to check.
        raise KcoreToolError(f"vmalloc check is live only: it compares /proc/kcore with the page tables "
                             f"of the running kernel, and {core.path} is a saved {core.kind}; "
                             "run it as root on the machine itself (-c /proc/kcore)")
    k = kernel_of(ctx)
    checker = k.checker()
    model = k.vmalloc()
    results = []
    with item_progress(list(model.select(kinds=kinds or CHECK_KINDS)), "checking") as bar:
        for area in bar:
            results.append(checker.check(area))
    bad = [r for r in results if r.mismatches]
    changing = sum(len(r.changing) for r in results)
    totals = summarize(results)
    if ctx.find_root().obj.json:
        emit_json({"areas": len(results), "mismatched_areas": len(bad), "by_defect": totals,
                   "changing_pages": changing, "defects": DEFECTS,
                   "results": [r.to_dict() for r in results if r.mismatches or r.changing]})
    else:
        rows = []
        for r in bad:
            pages = ",".join(str(m.page) for m in r.mismatches[:12]) + ("..." if len(r.mismatches) > 12 else "")
            defects = ", ".join(f"{d} {n}" for d, n in r.by_defect().items())
            rows.append((hx(r.start), hx(r.end), r.kind, len(r.mismatches), pages, defects))
        if rows:
            click.echo(table(rows, ["start", "end", "kind", "pages", "which", "defect"]))
            click.echo("")
            for d, n in totals.items():
                click.echo(f"{d}: {n} page(s) -- {DEFECTS[d]}")
        if changing:
            click.echo(f"{changing} page(s) changed while being read (live memory in use; not counted)")
        click.echo(f"{len(results)} area(s) checked, {len(bad)} with pages that differ")
    if bad:
        ctx.exit(3)
