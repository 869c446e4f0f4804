"""Commands that need only the core file: info, segments, notes, vmcoreinfo."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from kcoretool.api import Core, DebugInfoPlan, NoteInfo, debuginfo_plan
from kcoretool.cli.options import example
from kcoretool.cli.output import emit_json, human, hx, table
from kcoretool.cli.words import cli_words
from kcoretool.errors import KcoreToolError


def _core(ctx: click.Context) -> Core:
    return ctx.obj.core()


def _kind_label(core: Core) -> str:
    return f"{core.kind} (live)" if core.is_live else core.kind


def _segment_summary(core: Core) -> str:
    counts = core.segment_counts()
    return ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "none"


@click.command(short_help="Release, page size, KASLR, CPUs, segments.",
               epilog=example("kcoretool -c vmcore info"))
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
        "debuginfo": {k: cli_words(v) if k == "reason" and v else v
                      for k, v in _debuginfo_plan(ctx, core).to_dict().items()},
    }
    incomplete = getattr(core, "incomplete", None)
    if incomplete:  # only a cut kdump file has the key
        facts["incomplete"] = incomplete
    if ctx.obj.json:
        emit_json(facts)
        return
    crash = core.crash_time
    rows = [
        ("core", core.path),
        ("kind", _kind_label(core)),
        ("release", core.release or "unknown (no VMCOREINFO)"),
        ("arch", core.arch),
        ("page size", core.page_size if core.page_size is not None else "unknown"),
        ("KASLR offset", hx(core.kaslr_offset)),
        ("CPUs", core.cpus if core.cpus is not None else "-"),
        ("crash time", _date(crash)),
        ("VMCOREINFO", core.vmcoreinfo_source or "none"),
        ("segments", _segment_summary(core)),
        ("debug info", cli_words(_debuginfo_plan(ctx, core).describe())),
    ]
    if incomplete:
        rows.append(("dump", f"INCOMPLETE: {incomplete}; those pages read as `truncated` zeros"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


def _date(t: Optional[int]) -> str:
    """A crash time as a UTC date; a value no calendar holds is shown as a number."""
    import time

    if not t:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return f"{t} (not a valid date: damaged?)"


def _debuginfo_plan(ctx: click.Context, core: Core) -> DebugInfoPlan:
    """What the drgn commands would use (decided from files and VMCOREINFO; no drgn here)."""
    return debuginfo_plan(core, ctx.obj.debuginfo, ctx.obj.vmlinux)


@click.command(short_help="Every PT_LOAD with addresses, sizes, kind.",
               epilog=example("kcoretool -c vmcore segments"))
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


@click.command(short_help="The ELF notes.",
               epilog=example("kcoretool -c vmcore notes --json"))
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


def _note_summary(core: Core, note: NoteInfo) -> str:
    n = core.notes
    if note.name == "CORE" and note.type == 3 and n.prpsinfo:
        return f"fname={n.prpsinfo.fname!r} args={n.prpsinfo.psargs!r}"
    if note.name == "CORE" and note.type == 4:
        return "task_struct of the reading task"
    if note.name == "VMCOREINFO" and core.vmcoreinfo is not None:
        return f"{len(core.vmcoreinfo)} keys, OSRELEASE={core.vmcoreinfo.osrelease}"
    return ""


@click.command(short_help="The VMCOREINFO text, or selected keys.",
               epilog=example("kcoretool -c vmcore vmcoreinfo PAGESIZE 'SYMBOL(_stext)'"))
@click.argument("keys", nargs=-1)
@click.pass_context
def vmcoreinfo(ctx: click.Context, keys: Tuple[str, ...]) -> None:
    """Print VMCOREINFO: all of it, or only the KEYs given."""
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
