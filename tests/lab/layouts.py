"""What kcoretool's layouts read from a kernel, recorded per lab kernel, so
drift shows up as one line (issue 21).

``record(vmcore, vmlinux)`` opens a lab dump with its DWARF, runs every
view's model build (vmalloc, vmallocinfo, exec memory, tasks, VMAs, page
tables) with ``drgn.offsetof``/``drgn.sizeof`` and the type lookups
recorded, and returns each struct member read (offset and type), each type
read (size) and each global of :data:`kcoretool.kernel.globals.GLOBALS`
the kernel has (type).  ``tests/lab/layouts/<series>.json`` holds what the
lab's kernel of that series gave; :func:`first_difference` names the first
entry that differs.  Run as ``python -m tests.lab.layouts VMCORE VMLINUX``
it prints the record (the lab's ``layouts`` command writes the files).
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any, Dict, Optional

LAYOUTS_DIR = pathlib.Path(__file__).resolve().parent / "layouts"


def record(vmcore: str, vmlinux: str) -> Dict[str, Any]:
    import drgn

    import kcoretool
    from kcoretool.kernel.globals import GLOBALS

    members: Dict[str, Dict[str, Any]] = {}
    types: Dict[str, Optional[int]] = {}
    real_offsetof, real_sizeof = drgn.offsetof, drgn.sizeof

    def offsetof(t: Any, member: str) -> int:
        off = real_offsetof(t, member)
        name = t.type_name()
        try:
            mtype: Optional[str] = t.member(member.split(".")[0].split("[")[0]).type.type_name()
        except (LookupError, ValueError):
            mtype = None
        members.setdefault(name, {})[member] = [off, mtype]
        return off

    def sizeof(t: Any) -> int:
        size = real_sizeof(t)
        if isinstance(t, drgn.Type):
            types[t.type_name()] = size
        return size

    drgn.offsetof, drgn.sizeof = offsetof, sizeof  # type: ignore[assignment]
    try:
        k = kcoretool.open_kernel(vmcore, vmlinux, debuginfo="dwarf")
        seen: set = set()
        prefix = {drgn.TypeKind.STRUCT: "struct ", drgn.TypeKind.UNION: "union ", drgn.TypeKind.ENUM: "enum ",
                  drgn.TypeKind.TYPEDEF: ""}

        def finder(prog: Any, kinds: Any, name: str, filename: Optional[str]) -> None:
            for kind in kinds:
                if kind in prefix:
                    seen.add(prefix[kind] + name)
            return None

        k.prog.register_type_finder("kcoretool-layout-record", finder, enable_index=0)
        k.vmalloc()
        list(k.vmallocinfo_lines())
        k.exec_memory()
        tasks = k.tasks()
        for t in tasks.tasks[:8]:
            if t.pid:
                try:
                    k.vmas(t.pid)
                except kcoretool.KcoreToolError:
                    pass
        k.walker()
    finally:
        drgn.offsetof, drgn.sizeof = real_offsetof, real_sizeof  # type: ignore[assignment]
    for name in sorted(seen):
        if name not in types:
            try:
                t = k.prog.type(name)
                types[name] = real_sizeof(t) if t.is_complete() else None
            except (LookupError, ValueError, TypeError):
                types[name] = None  # looked for and absent: part of the layout too
    globals_: Dict[str, Optional[str]] = {}
    for name in sorted(GLOBALS):
        try:
            globals_[name] = k.prog[name].type_.type_name()
        except (KeyError, LookupError):
            globals_[name] = None
    return {
        "release": k.release,
        "members": {t: dict(sorted(m.items())) for t, m in sorted(members.items())},
        "types": dict(sorted(types.items())),
        "globals": globals_,
    }


def first_difference(want: Dict[str, Any], got: Dict[str, Any]) -> Optional[str]:
    """One line naming the first entry both records have that differs, or
    None.  An entry only one run read (a path this boot's data did not take)
    is not a difference; one that is gone (None) where it was is."""
    for section in ("types", "globals"):
        w, g = want.get(section, {}), got.get(section, {})
        for name in sorted(set(w) & set(g)):
            if w[name] != g[name]:
                what = "size of" if section == "types" else "type of global"
                return f"{what} {name}: was {w[name]}, now {g[name]}"
    wm, gm = want.get("members", {}), got.get("members", {})
    for t in sorted(set(wm) & set(gm)):
        for m in sorted(set(wm[t]) & set(gm[t])):
            if wm[t][m] != gm[t][m]:
                return f"{t}.{m} (offset, type): was {wm[t][m]}, now {gm[t][m]}"
    return None


def path_for(series: str) -> pathlib.Path:
    return LAYOUTS_DIR / f"{series}.json"


def main(argv: list) -> int:
    print(json.dumps(record(argv[0], argv[1]), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
