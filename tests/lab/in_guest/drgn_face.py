"""kcoretool inside drgn on one real kernel (issue 15): python -m
tests.lab.in_guest.drgn_face CORE VMLINUX, on the host for a vmcore and
*inside* a lab guest for /proc/kcore.  Prints JSON for tests/lab/test_drgn_face.py:

- ``bare``: a bare drgn.Program (kcoretool's drgn plugin loaded, as drgn
  loads it) through ``kcoretool.from_program``: its debug info and areas;
- ``dwarf``: the same areas from ``open_kernel(CORE, VMLINUX)``;
- ``helpers``: drgn's own helpers on the bare program (tasks, vmap areas,
  jiffies, pid 1's first frame) and kcoretool's counts to compare with;
- ``plugin_with_dwarf``: whether the plugin loaded anything into a program
  that has the vmlinux's DWARF (it must not);
- ``command`` / ``cli``: the ``kcoretool`` drgn command's output and the
  CLI's for the same command line.

Live, only the test module's areas (caller kct_*) are compared: the rest
of the kernel allocates and frees between the two opens."""

import contextlib
import io
import json
import sys

import drgn
from click.testing import CliRunner

import kcoretool
from kcoretool.cli import cli

LIVE = "/proc/kcore"


def _program(core: str) -> drgn.Program:
    prog = drgn.Program()
    if core == LIVE:
        prog.set_kernel()
    else:
        prog.set_core_dump(core)
    return prog


def _areas(k: "kcoretool.Kernel", live: bool) -> list:
    return [a.to_dict() for a in k.vmalloc().select(caller="kct_*" if live else None, include_lazy=not live)]


def main() -> None:
    core, vmlinux = sys.argv[1], sys.argv[2]
    live = core == LIVE
    out: dict = {}
    prog = _program(core)
    bare = kcoretool.from_program(prog)
    out["bare"] = {"debuginfo": bare.debuginfo.to_dict(), "areas": _areas(bare, live)}

    from drgn.helpers.linux.mm import for_each_vmap_area
    from drgn.helpers.linux.pid import find_task, for_each_task

    out["helpers"] = {
        "tasks": sum(1 for _ in for_each_task(prog)),
        "vmap_areas": sum(1 for _ in for_each_vmap_area(prog)),
        "jiffies": prog["jiffies"].value_(),
        "pid1_frame": prog.stack_trace(find_task(prog, 1))[0].name,
        "kcoretool_tasks": len(bare.tasks(threads=True).tasks),
        "kcoretool_areas": len(bare.vmalloc(refresh=live).areas),
    }

    dwarf = kcoretool.open_kernel(core, vmlinux, debuginfo="dwarf")
    out["dwarf"] = {"debuginfo": dwarf.debuginfo.to_dict(), "areas": _areas(dwarf, live)}

    p2 = _program(core)
    p2.load_debug_info([vmlinux], main=True)
    list(for_each_task(p2))
    p2.type("struct vmap_area")
    from kcoretool.debuginfo.btfkernel import plugin_btf

    out["plugin_with_dwarf"] = {"registered": "kcoretool_plugin" in p2.cache,
                                "loaded": plugin_btf(p2) is not None,
                                "from_program": kcoretool.from_program(p2).debuginfo.to_dict()}

    argv = ["vmalloc", "list", "--caller", "kct_make_*"]
    try:
        from drgn.commands import run_command
    except ImportError:
        out["command"] = None
    else:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            run_command(prog, "kcoretool " + " ".join(f"'{a}'" if "*" in a else a for a in argv))
        out["command"] = buf.getvalue()
    r = CliRunner().invoke(cli, ["-c", core, "--debuginfo", "btf", *argv], catch_exceptions=False)
    out["cli"] = r.output
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
