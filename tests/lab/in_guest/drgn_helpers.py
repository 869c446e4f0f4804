"""drgn's own helpers on one real kernel (issue 25): python -m
tests.lab.in_guest.drgn_helpers CORE [VMLINUX].  With VMLINUX, drgn uses its
DWARF; without it, only what kcoretool's drgn plugin gives (kallsyms, BTF, the
typed-globals table, the kernel's ORC from memory).  Prints JSON for
tests/lab/test_drgn_helpers.py, which runs this twice per dump and compares:

- ``globals``: every entry of kcoretool's table of globals as drgn resolves it
  (address, size, type shape), or why not;
- ``stacks``: every task's stack trace, the PC and function of each frame
  and the name ``%pS`` gives its PC (DWARF's inline frames left out: ORC
  has none);
- ``dmesg``, ``nets``, ``bpf_progs``, ``bpf_maps``, ``task_states``;
- ``crash``: the output of drgn's ``%crash`` commands ps, log, bpf, sys, mod,
  kmem -v, vm 1, bt 1, foreach bt, timer, irq, dev, swap (or the error
  they raised).

``--live-both`` (inside the guest, on /proc/kcore): both programs in this one
process, read one after the other, for the comparisons that hold on a
running kernel."""

import contextlib
import io
import json
import sys
from typing import Any, Dict, List, Optional

import drgn
from drgn.helpers.linux.pid import for_each_task

LIVE = "/proc/kcore"
CRASH = ("ps", "log", "bpf", "sys", "mod", "kmem -v", "vm 1", "bt 1", "foreach bt", "timer", "irq", "dev", "swap")


def program(core: str, vmlinux: Optional[str]) -> drgn.Program:
    prog = drgn.Program()
    if core == LIVE:
        prog.set_kernel()
    else:
        prog.set_core_dump(core)
    try:
        # what `drgn -c CORE [-s VMLINUX]` does
        prog.load_debug_info([vmlinux] if vmlinux else [], default=True, main=bool(vmlinux))
    except drgn.MissingDebugInfoError:
        pass
    return prog


def shape(t: drgn.Type) -> Any:
    """A type as its layout: typedefs and qualifiers are C spelling, not layout."""
    t = t.unqualified()
    while t.kind == drgn.TypeKind.TYPEDEF:
        t = t.type.unqualified()
    if t.kind == drgn.TypeKind.ARRAY:
        return ["array", t.length, shape(t.type)]
    if t.kind == drgn.TypeKind.POINTER:
        target = t.type.unqualified()
        while target.kind == drgn.TypeKind.TYPEDEF:
            target = target.type.unqualified()
        return ["pointer", target.tag if target.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION)
                else target.kind.name]
    if t.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
        return [t.kind.name, t.tag, drgn.sizeof(t), [m.name for m in t.members or ()]]
    if t.kind == drgn.TypeKind.ENUM:
        return ["enum", drgn.sizeof(t)]
    return [t.kind.name, drgn.sizeof(t) if t.is_complete() else None]


def globals_(prog: drgn.Program) -> Dict[str, Any]:
    from kcoretool.kernel.globals import GLOBALS

    out: Dict[str, Any] = {}
    for name in GLOBALS:
        try:
            obj = prog.object(name, drgn.FindObjectFlags.VARIABLE)
        except LookupError:
            out[name] = None
            continue
        out[name] = [obj.address_, shape(obj.type_)]
    return out


def stacks(prog: drgn.Program) -> Dict[str, List[List[Any]]]:
    """Each frame as ``[pc, name, the name %pS gives pc]`` (kallsyms: what
    the kernel's own stack dumps print; None outside the core kernel)."""
    from kcoretool.debuginfo.kallsyms import kallsyms_table

    table = kallsyms_table(prog)

    def pS(pc: int) -> Optional[str]:
        found = table.lookup(pc) if table is not None else None
        return found[0] if found else None

    out: Dict[str, List[List[Any]]] = {}
    for task in for_each_task(prog):
        key = f"{task.pid.value_()}:{task.value_():#x}"
        try:
            trace = prog.stack_trace(task)
        except (ValueError, LookupError, drgn.FaultError) as e:
            out[key] = [["error", str(e)]]
            continue
        out[key] = [[f.pc, f.name, pS(f.pc)] for f in trace if not f.is_inline]
    return out


def crash(prog: drgn.Program) -> Dict[str, str]:
    try:
        from drgn.commands import run_command
    except ImportError:
        return {}
    out = {}
    for cmd in CRASH:
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                run_command(prog, "crash " + cmd)
            out[cmd] = buf.getvalue()
        except Exception as e:  # compared as text: the same error in both modes is the same answer
            out[cmd] = f"{buf.getvalue()}error: {type(e).__name__}: {e}"
    return out


def collect(prog: drgn.Program, live: bool) -> Dict[str, Any]:
    from drgn.helpers.linux.bpf import bpf_map_for_each, bpf_prog_for_each
    from drgn.helpers.linux.net import for_each_net
    from drgn.helpers.linux.printk import get_dmesg
    from drgn.helpers.linux.sched import task_state_to_char

    out: Dict[str, Any] = {"globals": globals_(prog), "stacks": stacks(prog)}
    out["task_states"] = {f"{t.pid.value_()}:{t.value_():#x}": task_state_to_char(t) for t in for_each_task(prog)}
    out["switches"] = {f"{t.pid.value_()}:{t.value_():#x}": (t.nvcsw + t.nivcsw).value_()
                       for t in for_each_task(prog)}
    out["nets"] = [n.value_() for n in for_each_net(prog)]
    out["bpf_progs"] = [[p.aux.id.value_(), p.value_()] for p in bpf_prog_for_each(prog)]
    out["bpf_maps"] = [[m.id.value_(), m.value_()] for m in bpf_map_for_each(prog)]
    out["dmesg"] = get_dmesg(prog).decode(errors="replace")
    if not live:
        out["crash"] = crash(prog)
    return out


def main() -> None:
    if sys.argv[1] == "--live-both":
        vmlinux = sys.argv[2]
        res = {"plugin": collect(program(LIVE, None), True), "dwarf": collect(program(LIVE, vmlinux), True)}
    else:
        core = sys.argv[1]
        vmlinux = sys.argv[2] if len(sys.argv) > 2 else None
        prog = program(core, vmlinux)
        res = collect(prog, core == LIVE)
        from kcoretool.debuginfo.btfkernel import plugin_btf

        res["plugin_loaded"] = plugin_btf(prog) is not None
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
