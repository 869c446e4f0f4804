# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Executable-memory audit
-----------------------

The other side of :mod:`kcoretool.model.exec`: instead of asking the
allocators what they handed out, walk the kernel half of the page tables
(:meth:`~kcoretool.reader.pagetable.PageTableWalker.executable_runs`) and
give every executable byte an owner -- the kernel image's text, the
real-mode trampoline, module text, BPF programs and the kernel's own classic
BPF filters in their packs, trampolines, kprobe slot pages, ftrace
trampolines, the execmem ROX cache.  What has no owner, or is wrong for its
owner, becomes an :class:`AuditFlag` with a reason from :data:`REASONS`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple

from kcoretool.model.exec import ExecModel, ExecRegion
from kcoretool.model.vmalloc import VmallocModel
from kcoretool.reader.pagetable import ExecRun
from kcoretool.x86_64 import VSYSCALL_ADDR

if TYPE_CHECKING:
    import drgn

__all__ = ("REASONS", "AuditFlag", "CensusRange", "ExecAudit", "audit_exec")

#: Why an :class:`AuditFlag` was raised.
REASONS: Dict[str, str] = {
    "unowned-exec": "executable memory no owner claims",
    "wx": "writable and executable at once",
    "text-not-exec": "an owner's code is not executable",
    "data-exec": "module or kernel data/rodata is executable",
    "pack-unowned": "used bpf_prog_pack chunks or ROX-cache space no program or module owns",
    "fill": "free JIT space does not hold the kernel's trapping fill",
    "bpf-not-in-idr": "a BPF program image in kallsyms whose program is not in prog_idr",
    "bpf-image-missing": "a prog_idr program whose JIT image is not where the allocator put it",
    "hidden-module": "a module whose memory, tree node or kobject exists but which is not on the modules list",
}

#: Census kinds that must be executable (their code pages).
_CODE_KINDS = ("kernel-text", "module-text", "bpf-prog", "bpf-classic", "bpf-trampoline", "bpf-dispatcher",
               "bpf-struct-ops", "kprobe-insn", "kprobe-optinsn", "ftrace-trampoline")
#: Census kinds that must not be.
_DATA_KINDS = ("module-rodata", "module-ro-after-init", "module-data", "module-init-rodata", "module-init-data",
               "kernel-data")
#: vmalloc callers of module memory (the loader, or execmem for it)
_LOADER_CALLERS = ("load_module", "move_module", "module_alloc", "module_memory_alloc", "execmem_alloc",
                   "execmem_alloc_rw")
#: x86 jit_fill_hole(), bpf_arch_text_invalidate(), execmem_fill_trapping_insns(): INT3
_FILL = 0xCC
_PAGE = 4096
_CHUNK = 64


@dataclass
class CensusRange:
    """Executable bytes ``[start, end)`` and their owner (``kind`` is
    ``unowned`` when none claims them)."""

    start: int
    end: int
    kind: str
    owner: str
    writable: bool
    #: the leaf size mapping them (4 KiB, 2 MiB, 1 GiB)
    page_size: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_dict(self) -> Dict[str, Any]:
        return {"start": self.start, "end": self.end, "size": self.end - self.start, "kind": self.kind,
                "owner": self.owner, "writable": self.writable, "page_size": self.page_size}


@dataclass
class AuditFlag:
    """One finding: ``reason`` (a key of :data:`REASONS`) over ``[start, end)``."""

    reason: str
    start: int
    end: int
    #: what it is / who should own it
    detail: str
    #: the vmap area holding it and the area's caller, when one does
    area: Optional[int] = None
    caller: Optional[str] = None

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_dict(self) -> Dict[str, Any]:
        return {"reason": self.reason, "start": self.start, "end": self.end, "size": self.end - self.start,
                "detail": self.detail, "area": self.area, "caller": self.caller,
                "meaning": REASONS.get(self.reason, "")}


@dataclass
class ExecAudit:
    """The census of executable kernel memory and what was flagged."""

    runs: List[ExecRun]
    census: List[CensusRange]
    flags: List[AuditFlag]
    #: things the kernel does by design that look like a flag (not flagged)
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def executable_bytes(self) -> int:
        return sum(r.size for r in self.runs)

    @property
    def unowned_bytes(self) -> int:
        return sum(c.size for c in self.census if c.kind == "unowned")

    def totals(self) -> Dict[str, int]:
        """Executable bytes per owner kind (``unowned`` included)."""
        out: Dict[str, int] = {}
        for c in self.census:
            out[c.kind] = out.get(c.kind, 0) + c.size
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> Dict[str, Any]:
        return {
            "executable_bytes": self.executable_bytes, "unowned_bytes": self.unowned_bytes,
            "totals": self.totals(), "flags": [f.to_dict() for f in self.flags],
            "census": [c.to_dict() for c in self.census],
            "runs": [{"start": r.start, "end": r.end, "writable": r.writable, "page_size": r.page_size}
                     for r in self.runs],
            "notes": list(self.notes), "warnings": list(self.warnings),
        }


class _Owner:
    __slots__ = ("start", "end", "kind", "owner")

    def __init__(self, start: int, end: int, kind: str, owner: str) -> None:
        self.start, self.end, self.kind, self.owner = start, end, kind, owner


def _page_round(lo: int, hi: int) -> Tuple[int, int]:
    return lo & ~(_PAGE - 1), (hi + _PAGE - 1) & ~(_PAGE - 1)


def _owner_of_region(r: ExecRegion, packs: Set[int]) -> _Owner:
    lo = r.alloc_start if r.alloc_start is not None else r.start
    hi = r.alloc_end if r.alloc_end is not None else r.end
    if r.container is None:
        lo, hi = _page_round(lo, hi)  # its own allocation: whole pages
    elif r.container in packs:
        lo, hi = lo & ~(_CHUNK - 1), (hi + _CHUNK - 1) & ~(_CHUNK - 1)  # a partly used chunk is its user's
    kind = r.kind
    if kind == "free":
        kind = "free-pack" if r.container in packs else "free-cache"
    return _Owner(lo, hi, kind, r.owner)


def _paint(runs: List[ExecRun], owners: List[_Owner]) -> List[CensusRange]:
    """Each run cut where owners begin and end; every piece goes to the
    smallest owner covering it (a program before its pack)."""
    small = sorted((o for o in owners if o.end - o.start <= 8 << 20), key=lambda o: o.start)
    big = [o for o in owners if o.end - o.start > 8 << 20]
    starts = [o.start for o in small]
    out: List[CensusRange] = []
    for run in runs:
        i = bisect.bisect_left(starts, run.start - (8 << 20))
        j = bisect.bisect_left(starts, run.end)
        cands = [o for o in small[i:j] if o.end > run.start]
        cands += [o for o in big if o.start < run.end and o.end > run.start]
        points = sorted({run.start, run.end}
                        | {max(run.start, min(run.end, x)) for o in cands for x in (o.start, o.end)})
        for a, b in zip(points, points[1:]):
            if a >= b:
                continue
            best = None
            for o in cands:
                if o.start <= a and b <= o.end and (best is None or o.end - o.start < best.end - best.start):
                    best = o
            kind, owner = (best.kind, best.owner) if best is not None else ("unowned", "-")
            last = out[-1] if out else None
            if last is not None and last.end == a and (last.kind, last.owner, last.writable) == \
                    (kind, owner, run.writable):
                last.end = b
            else:
                out.append(CensusRange(a, b, kind, owner, run.writable, run.page_size))
    return out


def _covered(runs: List[ExecRun], lo: int, hi: int) -> List[Tuple[int, int]]:
    """The parts of ``[lo, hi)`` that no executable run covers."""
    starts = [r.start for r in runs]
    missing = []
    pos = lo
    i = max(0, bisect.bisect_right(starts, lo) - 1)
    while pos < hi:
        while i < len(runs) and runs[i].end <= pos:
            i += 1
        if i >= len(runs) or runs[i].start >= hi:
            missing.append((pos, hi))
            break
        if runs[i].start > pos:
            missing.append((pos, runs[i].start))
        pos = runs[i].end
    return missing


def audit_exec(prog: drgn.Program, model: ExecModel, vmalloc: VmallocModel, runs: List[ExecRun],
               caller_name: Callable[[int], Optional[str]]) -> ExecAudit:
    """Census and flags for the executable ``runs`` of ``prog``'s kernel
    page tables, owned through ``model`` and placed in ``vmalloc``'s areas;
    ``caller_name(addr)`` names a flagged area's caller."""
    from kcoretool.kernel.execmem import ExecReader
    from kcoretool.kernel.walk import WalkLog

    log = WalkLog()
    raw = ExecReader(prog, model.layout)
    lay = model.layout
    flags: List[AuditFlag] = []
    notes: List[str] = []
    owners: List[_Owner] = []

    # The kernel image: text to PAGE_ALIGN(_etext) (mark_rodata_ro() frees
    # the rest of that page run), init text while it is mapped, the rest is data.
    text, etext, end = raw.symbol("_text"), raw.symbol("_etext"), raw.symbol("_end")
    if text is not None and etext is not None:
        owners.append(_Owner(text, (etext + _PAGE - 1) & ~(_PAGE - 1), "kernel-text", "vmlinux"))
        if end is not None:
            owners.append(_Owner(text, (end + _PAGE - 1) & ~(_PAGE - 1), "kernel-data", "vmlinux"))
    sinit, einit = raw.symbol("_sinittext"), raw.symbol("_einittext")
    if sinit is not None and einit is not None:
        owners.append(_Owner(*_page_round(sinit, einit), "kernel-init-text", "vmlinux"))
    rm = raw.realmode_text(log)
    if rm is not None:
        owners.append(_Owner(rm[0], rm[1], "realmode-trampoline", "real_mode_header"))
    owners.append(_Owner(VSYSCALL_ADDR, VSYSCALL_ADDR + _PAGE, "vsyscall", "vsyscall page"))

    # What the allocators say, and the packs as containers of their chunks.
    packs = {p.start for p in model.packs}
    for p in model.packs:
        owners.append(_Owner(p.start, p.start + p.size, "bpf-prog-pack", "bpf_prog_pack"))
    for r in model.regions:
        owners.append(_owner_of_region(r, packs))

    # Modules off the list: in mod_tree or /sys/module but not on `modules`.
    listed = set(raw.module_list(log))
    tree, kobjs = raw.module_tree(log), raw.module_kobjects(log)
    hidden: Dict[int, List[str]] = {}
    for addr in tree:
        if addr not in listed:
            hidden.setdefault(addr, []).append("mod_tree")
    for addr in kobjs:
        if addr not in listed:
            hidden.setdefault(addr, []).append("/sys/module kobject")
    hidden_regions = []
    for addr, where in hidden.items():
        regs = raw.regions_of_module(addr, log)
        name = raw.module_name(addr) or f"module@{addr:#x}"
        for m in regs:
            lo, hi = _page_round(m.start, m.start + m.size)
            # first: against the ROX cache's unattributed busy range of the same size, it wins
            owners.insert(0, _Owner(lo, hi, m.kind, f"{name} (hidden)"))
            hidden_regions.append((lo, hi))
        span = (min(m.start for m in regs), max(m.start + m.size for m in regs)) if regs else (addr, addr + 1)
        area = vmalloc.find(span[0], include_lazy=True)
        flags.append(AuditFlag("hidden-module", span[0], span[1],
                               f"module {name} (struct module {addr:#x}) is in {' and '.join(where)} "
                               f"but not on the modules list", area.start if area else None,
                               _caller(area, caller_name)))

    census = _paint(runs, owners)

    def name_caller(addr: int) -> Optional[str]:
        """The symbol, else the hidden module holding ``addr`` (its symbols
        are out of reach with the module off the list), else the address."""
        found = caller_name(addr)
        if found:
            return found
        for o in owners:
            if o.owner.endswith(" (hidden)") and o.start <= addr < o.end:
                return f"{o.owner}+{addr - o.start:#x}"
        return f"{addr:#x}"

    # Unowned, W+X, data executable, pack space nobody owns.
    for c in census:
        area = vmalloc.find(c.start, include_lazy=True)
        if c.kind == "unowned":
            flags.append(AuditFlag("unowned-exec", c.start, c.end, "no module, BPF image, trampoline or "
                                   "kernel text owns it", area.start if area else None, _caller(area, name_caller)))
        elif c.kind in _DATA_KINDS:
            flags.append(AuditFlag("data-exec", c.start, c.end, f"{c.kind} of {c.owner}",
                                   area.start if area else None, _caller(area, name_caller)))
        elif c.kind == "unattributed":
            flags.append(AuditFlag("pack-unowned", c.start, c.end, f"used {c.owner} space",
                                   area.start if area else None, _caller(area, name_caller)))
        if c.writable:
            if lay.bpf_images_writable and c.kind in ("bpf-trampoline", "bpf-dispatcher"):
                notes.append(f"{c.start:#x}-{c.end:#x} {c.kind} {c.owner} is writable and executable by design "
                             "(bpf_jit_alloc_exec_page(): 'Keep image as writeable')")
            else:
                flags.append(AuditFlag("wx", c.start, c.end, "no owner" if c.kind == "unowned" else
                                       f"{c.kind} {c.owner}",
                                       area.start if area else None, _caller(area, name_caller)))

    # Owners' code must be executable.
    idr, subprogs = raw.bpf_idr(log)
    code: List[Tuple[int, int, str, str]] = []
    if text is not None and etext is not None:
        code.append((text, etext, "kernel-text", "vmlinux"))
    for r in model.regions:
        if r.kind == "module-text" and r.detail.get("module_state") == 0:
            code.append((r.start, r.end, r.kind, r.owner))
        elif r.kind in _CODE_KINDS and r.kind != "module-text" and not r.owner.endswith("(rw image)"):
            code.append((r.start, r.end, r.kind, r.symbol or r.owner))
    for lo, hi, kind, who in code:
        for a, b in _covered(runs, lo & ~(_PAGE - 1), hi):
            area = vmalloc.find(a, include_lazy=True)
            flags.append(AuditFlag("text-not-exec", max(a, lo), b, f"{kind} {who}", area.start if area else None,
                                   _caller(area, name_caller)))

    # BPF: kallsyms programs not in prog_idr (nor a subprogram of one); idr
    # programs outside every pack on a kernel with packs.
    for r in model.regions:
        if r.kind != "bpf-prog":
            continue
        bp = r.detail.get("bpf_prog")
        if lay.prog_idr and bp and bp not in idr and bp not in subprogs:
            flags.append(AuditFlag("bpf-not-in-idr", r.start, r.end,
                                   f"{r.symbol or r.owner} (struct bpf_prog {bp:#x})", r.area, None))
        if bp in idr and lay.prog_pack and r.container is None and r.size <= (2 << 20):
            flags.append(AuditFlag("bpf-image-missing", r.start, r.end,
                                   f"{r.symbol or r.owner} (id {idr[bp]}) is in no bpf_prog_pack", r.area, None))

    # Free JIT space must hold the trapping fill (INT3; a pack the XDP
    # dispatcher created starts zero-filled, bpf_jit_fill_hole_with_zero()).
    for r in model.regions:
        if r.kind != "free":
            continue
        in_pack = r.container in packs
        bad = _bad_fill(prog, r.start, r.end, zero_ok=in_pack and lay.bpf_fill_zero, log=log)
        for a, b in bad:
            flags.append(AuditFlag("fill", a, b, f"free {'bpf_prog_pack' if in_pack else 'execmem cache'} space "
                                   "holds bytes other than the trapping fill", r.area, None))

    # Module memory the loader allocated that no listed module owns.
    owned_areas = set(model.area_owners())
    pending = set(raw.init_free_pending(log))
    for va in vmalloc.areas:
        if va.lazy or va.vm is None or va.start in owned_areas or va.vm.addr in pending:
            continue
        loader = caller_name(va.vm.caller) if va.vm.caller else None
        if not loader or loader.split("+")[0] not in _LOADER_CALLERS:
            continue
        if any(lo < va.end and va.start < hi for lo, hi in hidden_regions):
            continue  # already flagged with its module
        if model.find(va.vm.addr) is not None:
            continue
        flags.append(AuditFlag("hidden-module", va.start, va.end, "module-loader memory that no module on the "
                               "modules list owns", va.start, loader))

    flags.sort(key=lambda f: (f.start, f.reason))
    return ExecAudit(runs, census, flags, notes, model.warnings + log.summary())


def _caller(area: Any, caller_name: Callable[[int], Optional[str]]) -> Optional[str]:
    if area is None or area.vm is None:
        return None
    return area.vm.caller_symbol or (caller_name(area.vm.caller) if area.vm.caller else None)


def _bad_fill(prog: drgn.Program, lo: int, hi: int, zero_ok: bool, log: Any) -> List[Tuple[int, int]]:
    """64-byte chunks of ``[lo, hi)`` that are not all INT3 (or all zero when allowed)."""
    import drgn

    out: List[Tuple[int, int]] = []
    pos = lo
    while pos < hi:
        n = min(hi - pos, 1 << 20)
        try:
            buf = prog.read(pos, n)
        except drgn.FaultError as e:
            log.warn(f"free JIT space {pos:#x}+{n:#x} unreadable ({e})")
            pos += n
            continue
        cc = bytes([_FILL]) * _CHUNK
        zz = bytes(_CHUNK)
        if buf.count(_FILL) != n:
            for off in range(0, n, _CHUNK):
                c = buf[off:off + _CHUNK]
                if c == cc[:len(c)] or (zero_ok and c == zz[:len(c)]):
                    continue
                a = pos + off
                if out and out[-1][1] == a:
                    out[-1] = (out[-1][0], a + len(c))
                else:
                    out.append((a, a + len(c)))
        pos += n
    return out
