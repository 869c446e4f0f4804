"""Commands that need only the core file: info, segments, notes, vmcoreinfo, read."""

from __future__ import annotations

import os
import sys
from typing import Optional, Tuple

import click

from kcoretool.cli.output import emit_json, hexdump_lines, human, hx, parse_address, parse_size, table
from kcoretool.errors import KcoreToolError

# Big reads go out in pieces so memory stays bounded.
CHUNK = 1 << 20


def _core(ctx: click.Context):
    return ctx.obj.core()


def _kind_label(core) -> str:
    return f"{core.kind} (live)" if core.is_live else core.kind


def _segment_summary(core) -> str:
    counts = core.segment_counts()
    return ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "none"


@click.command()
@click.pass_context
def info(ctx: click.Context) -> None:
    """What the core is: kernel release, page size, KASLR offset, CPUs, segments."""
    core = _core(ctx)
    facts = {
        "path": core.path,
        "kind": core.kind,
        "live": core.is_live,
        "release": core.release,
        "arch": core.arch,
        "page_size": core.page_size,
        "kaslr_offset": core.kaslr_offset,
        "cpus": core.cpus,
        "crash_time": core.crash_time,
        "vmcoreinfo": core.vmcoreinfo_source,
        "segments": core.segment_counts(),
        "debuginfo": _debuginfo_plan(ctx, core).to_dict(),
    }
    if ctx.obj.json:
        emit_json(facts)
        return
    import time

    crash = core.crash_time
    rows = [
        ("core", core.path),
        ("kind", _kind_label(core)),
        ("release", core.release or "unknown (no VMCOREINFO)"),
        ("arch", core.arch),
        ("page size", core.page_size if core.page_size is not None else "unknown"),
        ("KASLR offset", hx(core.kaslr_offset)),
        ("CPUs", core.cpus if core.cpus is not None else "-"),
        ("crash time", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(crash)) if crash else "-"),
        ("VMCOREINFO", core.vmcoreinfo_source or "none"),
        ("segments", _segment_summary(core)),
        ("debug info", _debuginfo_plan(ctx, core).describe()),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


def _debuginfo_plan(ctx: click.Context, core):
    """What the drgn commands would use (decided from files and VMCOREINFO; no drgn here)."""
    from kcoretool.debuginfo.plan import plan_debuginfo

    return plan_debuginfo(ctx.obj.debuginfo, core.release, ctx.obj.vmlinux, core.is_live, core.vmcoreinfo)


@click.command()
@click.pass_context
def segments(ctx: click.Context) -> None:
    """Every PT_LOAD with its addresses, sizes and kind."""
    core = _core(ctx)
    if ctx.obj.json:
        emit_json([s.to_dict() for s in core.segments])
        return
    rows = []
    for s in core.segments:
        rows.append((
            s.index,
            s.kind,
            hx(s.vaddr),
            hx(s.vend),
            hx(s.paddr),
            human(s.memsz),
            "" if s.filesz == s.memsz else human(s.filesz),
            hx(s.offset),
        ))
    click.echo(table(rows, ["#", "kind", "vaddr", "vend", "paddr", "size", "in file", "offset"],
                     colalign=("right", "left", "right", "right", "right", "right", "right", "right")))


@click.command()
@click.pass_context
def notes(ctx: click.Context) -> None:
    """The ELF notes: CPU register notes, process info, task_struct, VMCOREINFO."""
    core = _core(ctx)
    n = core.notes
    if ctx.obj.json:
        emit_json({
            "notes": [{"name": x.name, "type": x.type, "size": x.size} for x in n.all],
            "prstatus": [{"pid": p.pid, "cursig": p.cursig} for p in n.prstatus],
            "prpsinfo": None if n.prpsinfo is None else {
                "state": n.prpsinfo.state, "fname": n.prpsinfo.fname,
                "psargs": n.prpsinfo.psargs, "pid": n.prpsinfo.pid},
            "taskstruct_size": n.taskstruct_size,
            "vmcoreinfo_size": n.vmcoreinfo_size,
        })
        return
    if not n.all:
        click.echo(f"{core.path}: no ELF notes ({core.kind})")
        return
    rows = []
    prstatus = iter(n.prstatus)
    for x in n.all:
        if x.name == "CORE" and x.type == 1:
            p = next(prstatus, None)
            summary = "" if p is None else f"pid {p.pid}" + (f", signal {p.cursig}" if p.cursig else "")
        else:
            summary = _note_summary(core, x)
        rows.append((x.name, _note_type_name(x.name, x.type), x.size, summary))
    click.echo(table(rows, ["name", "type", "size", "contents"]))


_CORE_TYPES = {1: "NT_PRSTATUS", 2: "NT_FPREGSET", 3: "NT_PRPSINFO", 4: "NT_TASKSTRUCT",
               0x202: "NT_X86_XSTATE"}


def _note_type_name(name: str, ntype: int) -> str:
    if name == "CORE" and ntype in _CORE_TYPES:
        return _CORE_TYPES[ntype]
    return str(ntype)


def _note_summary(core, note) -> str:
    n = core.notes
    if note.name == "CORE" and note.type == 3 and n.prpsinfo:
        return f"fname={n.prpsinfo.fname!r} args={n.prpsinfo.psargs!r}"
    if note.name == "CORE" and note.type == 4:
        return "task_struct of the reading task"
    if note.name == "VMCOREINFO" and core.vmcoreinfo is not None:
        return f"{len(core.vmcoreinfo)} keys, OSRELEASE={core.vmcoreinfo.osrelease}"
    return ""


@click.command()
@click.argument("keys", nargs=-1)
@click.pass_context
def vmcoreinfo(ctx: click.Context, keys: Tuple[str, ...]) -> None:
    """Print VMCOREINFO (all of it, or the KEYs given, e.g. PAGESIZE 'SYMBOL(_stext)')."""
    core = _core(ctx)
    info = core.vmcoreinfo
    if info is None:
        raise KcoreToolError(f"{core.path}: has no VMCOREINFO ({core.kind}); "
                             "QEMU dumps need `-device vmcoreinfo` and the guest's qemu_fw_cfg driver")
    selected = {}
    for key in keys or list(info):
        if key not in info:
            raise KcoreToolError(f"{core.path}: VMCOREINFO has no key {key!r}; "
                                 "`kcoretool vmcoreinfo` lists them all")
        selected[key] = info[key]
    if ctx.obj.json:
        emit_json(selected)
        return
    for key, value in selected.items():
        click.echo(f"{key}={value}")


@click.command()
@click.argument("address")
@click.argument("length", required=False, default="256")
@click.option("-o", "--output", metavar="FILE", help="Write raw bytes to FILE ('-' for stdout) instead of a hexdump.")
@click.option("--physical", is_flag=True, help="ADDRESS is a physical address.")
@click.option("--via", type=click.Choice(["auto", "elf", "pagetable", "kcore"]), default="auto", show_default=True,
              help="elf: the core's segments; pagetable: the kernel's page tables with vmalloc semantics "
                   "(needs debug info); kcore: the live kernel's own vread; auto: pagetable for vmalloc "
                   "and module addresses the segments do not hold as plain memory, elf otherwise.")
@click.option("--map", "show_map", is_flag=True, help="Print the runs of page states instead of a hexdump.")
@click.option("--force-io", is_flag=True, help="Read ioremap areas (device memory) too.")
@click.option("--sparse", is_flag=True, help="Read the present pages of VM_SPARSE areas.")
@click.option("--pid", type=int, default=None, help="ADDRESS is in this process's memory (its page tables).")
@click.pass_context
def read(ctx: click.Context, address: str, length: str, output: Optional[str], physical: bool, via: str,
         show_map: bool, force_io: bool, sparse: bool, pid: Optional[int]) -> None:
    """Read LENGTH bytes (default 256) at ADDRESS: hex (0x... or with a-f),
    decimal, or SYMBOL+OFF for symbols VMCOREINFO lists."""
    if pid is not None:
        from kcoretool.cli.task import read_user

        if physical or via not in ("auto", "pagetable"):
            raise click.UsageError("--pid reads go through the task's page tables; drop --physical/--via")
        read_user(ctx, pid, parse_address(address), parse_size(length), output, show_map)
        return
    core = _core(ctx)
    symbols = core.vmcoreinfo.symbol if core.vmcoreinfo is not None else None
    try:
        addr = parse_address(address, symbols)
    except KcoreToolError:
        if physical or via == "elf":
            raise
        from kcoretool.cli.readcmds import kernel_address

        addr = kernel_address(ctx, address)  # the kernel's own symbol table
    size = parse_size(length)
    if physical and via not in ("auto", "elf"):
        raise click.UsageError("--physical reads go through the core's segments; drop --via")
    if not physical and _wants_reader(core, addr, via):
        from kcoretool.cli.readcmds import read_via_reader

        read_via_reader(ctx, addr, size, output, "kcore" if via == "kcore" else "pagetable",
                        show_map, force_io, sparse)
        return
    zero_runs = []
    if output is not None:
        out = sys.stdout.buffer if output == "-" else open(output, "wb")
        try:
            for pos in range(addr, addr + size, CHUNK):
                res = core.read_ex(pos, min(CHUNK, addr + size - pos), physical)
                out.write(res.data)
                zero_runs += res.zero_filled
        finally:
            if out is not sys.stdout.buffer:
                out.close()
            else:
                out.flush()
    elif ctx.obj.json:
        res = core.read_ex(addr, min(size, 1 << 24), physical)
        emit_json({"address": addr, "physical": physical, "length": len(res.data),
                   "data": res.data.hex(),
                   "zero_filled": [{"address": a, "length": n} for a, n in res.zero_filled]})
        return
    else:
        for pos in range(addr, addr + size, CHUNK):
            res = core.read_ex(pos, min(CHUNK, addr + size - pos), physical)
            for line in hexdump_lines(pos, res.data):
                click.echo(line)
            zero_runs += res.zero_filled
    for a, n in zero_runs:
        click.echo(f"kcoretool: note: {n} bytes at {'physical' if physical else 'virtual'} {a:#x} "
                   "are not in the file (excluded from the dump) and read as zeros", err=True)


def _wants_reader(core, addr: int, via: str) -> bool:
    """Whether ``read`` needs the page-table reader.  /proc/kcore's vmalloc
    and modules segments are the kernel's vread -- right for vmalloc memory
    only in part (see ``vmalloc check``) -- and a vmcore holds no vmalloc
    addresses at all: both go through the page tables unless --via elf."""
    if via in ("pagetable", "kcore"):
        return True
    if via == "elf":
        return False
    seg = core.find_segment(addr)
    if seg is None:
        return True
    # A saved copy of kcore holds what the kernel returned; nothing else to ask.
    return seg.kind in ("vmalloc", "modules") and core.is_live
