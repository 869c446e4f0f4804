# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Executable memory, raw
----------------------

What the vmap layer cannot see: the allocators that sub-allocate inside one
``vm_struct`` area, and the owners of the areas it can see.

- module memory: ``mod->mem[MOD_*]`` (6.4+) or ``core_layout``/``init_layout``
  (:linux:`kernel/module/main.c`);
- ``bpf_prog_pack`` packs and their 64-byte chunk bitmaps, the BPF symbols
  (programs, trampolines, dispatchers) on ``bpf_kallsyms`` and the programs in
  ``prog_idr`` (:linux:`kernel/bpf/core.c`, :linux:`kernel/bpf/syscall.c`);
- kprobe instruction slot pages (:linux:`kernel/kprobes.c`), ftrace
  trampolines (:linux:`kernel/trace/ftrace.c`), the XDP dispatcher's RW page;
- execmem's ROX cache (``execmem_cache.busy_areas``, :linux:`mm/execmem.c`).

Every walk is bounded and logs what it could not read into a
:class:`~kcoretool.kernel.walk.WalkLog`. Kernel differences are decided once,
in :class:`ExecLayout`. Results are plain tuples; :mod:`kcoretool.model.exec`
makes the model.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import drgn

from kcoretool.kernel.layout import has_member, has_symbol, type_or_none
from kcoretool.kernel.maple import mt_for_each
from kcoretool.kernel.walk import DEFAULT_LIMIT, WalkLog, is_kernel_pointer, list_walk, xarray_walk

__all__ = (
    "BPF_PROG_CHUNK_SIZE",
    "ExecLayout",
    "ExecReader",
    "RawBpfSym",
    "RawModuleRegion",
    "RawPack",
    "RawRoxCache",
    "RawTextPage",
    "detect_exec_layout",
)

#: BPF_PROG_CHUNK_SIZE (1 << BPF_PROG_CHUNK_SHIFT), a #define, unchanged since
#: 57631054fae6 ("bpf: Introduce bpf_prog_pack allocator") (v5.18).
BPF_PROG_CHUNK_SIZE = 64
#: execmem ROX cache: PENDING_FREE_MASK = 1 << (PAGE_SHIFT - 1) in busy_areas values.
PENDING_FREE_MASK = 0x800
#: bound on modules, packs, symbols, pages walked (corrupt lists never loop)
MAX_ITEMS = 1_000_000

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclasses.dataclass(frozen=True)
class ExecLayout:
    """How one kernel keeps its executable allocations; each field decided by
    one probe in :func:`detect_exec_layout` (evidence and commit in
    :meth:`describe`)."""

    #: ``"mem"`` (``struct module_memory mem[]``, 6.4+), ``"layout"``
    #: (``core_layout``/``init_layout``) or ``"none"`` (no modules).
    module_memory: str
    #: ``pack_list`` of ``struct bpf_prog_pack`` exists (5.18+).
    prog_pack: bool
    #: ``bpf_kallsyms`` list of ``struct bpf_ksym`` exists (5.0+).
    bpf_kallsyms: bool
    #: ``prog_idr`` exists.
    prog_idr: bool
    #: ``struct bpf_dispatcher`` has ``rw_image`` (its RW page has no ksym).
    dispatcher_rw_image: bool
    #: kprobe instruction slot caches (``kprobe_insn_slots``).
    kprobe_insn: bool
    #: ``ftrace_ops_trampoline_list`` exists.
    ftrace_trampolines: bool
    #: ``execmem_alloc`` exists (6.10+): modules, BPF, kprobes, ftrace come from it.
    execmem: bool
    #: execmem's ROX cache (``execmem_cache``) exists (6.13+ code; x86 uses it
    #: only where it selects ARCH_HAS_EXECMEM_ROX).
    rox_cache: bool
    #: ``bpf_binary_header.pages`` (< 5.18): a page count, the header page-aligned
    bpf_header_pages: bool
    #: ``bpf_jit_alloc_exec_page()`` exists: BPF trampoline and dispatcher
    #: images are kept writable and executable by design.
    bpf_images_writable: bool = False
    #: ``bpf_jit_fill_hole_with_zero()`` exists: a pack the dispatcher
    #: created is zero-filled, not INT3-filled.
    bpf_fill_zero: bool = False
    #: ``mod_tree`` (CONFIG_MODULES_TREE_LOOKUP): every module's memory by address.
    mod_tree: bool = False
    evidence: Tuple[Tuple[str, str, str, str], ...] = dataclasses.field(
        default=(), compare=False, repr=False
    )

    def describe(self) -> List[Dict[str, str]]:
        return [{"feature": f, "value": v, "evidence": e, "commit": c} for f, v, e, c in self.evidence]


def _has_function(prog: drgn.Program, name: str) -> bool:
    try:
        prog.symbol(name)
        return True
    except LookupError:
        return False


def detect_exec_layout(prog: drgn.Program) -> ExecLayout:
    ev: List[Tuple[str, str, str, str]] = []

    # ac3b432839234 ("module: replace module_layout with module_memory") (v6.4)
    if has_member(prog, "struct module", "mem"):
        module_memory = "mem"
    elif has_member(prog, "struct module", "core_layout"):
        module_memory = "layout"
    else:
        module_memory = "none"
    ev.append(("module_memory", module_memory, "members module.mem, module.core_layout",
               'ac3b432839234 ("module: replace module_layout with module_memory") (v6.4)'))

    prog_pack = has_symbol(prog, "pack_list")
    ev.append(("prog_pack", str(prog_pack), "symbol pack_list",
               '57631054fae6 ("bpf: Introduce bpf_prog_pack allocator") (v5.18)'))

    bpf_kallsyms = has_symbol(prog, "bpf_kallsyms")
    ev.append(("bpf_kallsyms", str(bpf_kallsyms), "symbol bpf_kallsyms",
               '74451e66d516 ("bpf: make jited programs visible in traces") (v4.15)'))

    prog_idr = has_symbol(prog, "prog_idr")
    ev.append(("prog_idr", str(prog_idr), "symbol prog_idr",
               'dc4bb0e23561 ("bpf: Introduce bpf_prog ID") (v4.13)'))

    dispatcher_rw_image = has_member(prog, "struct bpf_dispatcher", "rw_image")
    ev.append(("dispatcher_rw_image", str(dispatcher_rw_image), "member bpf_dispatcher.rw_image",
               '19c02415da25 ("bpf: use bpf_prog_pack for bpf_dispatcher") (v6.1)'))

    kprobe_insn = has_symbol(prog, "kprobe_insn_slots")
    ev.append(("kprobe_insn", str(kprobe_insn), "symbol kprobe_insn_slots",
               "kernel/kprobes.c insn slot cache (CONFIG_KPROBES)"))

    ftrace_trampolines = has_symbol(prog, "ftrace_ops_trampoline_list")
    ev.append(("ftrace_trampolines", str(ftrace_trampolines), "symbol ftrace_ops_trampoline_list",
               'fc0ea795f53c ("ftrace: Add symbols for ftrace trampolines") (v5.9)'))

    execmem = has_symbol(prog, "execmem_alloc")
    ev.append(("execmem", str(execmem), "symbol execmem_alloc",
               '"mm: introduce execmem_alloc() and execmem_free()" (Rapoport, v6.10)'))

    # ed2d9e1a26cc ("bpf: Use size instead of pages in bpf_binary_header")
    # (v5.18): before, the header held a page count and sat at the start of
    # the JIT image's page (bpf_jit_binary_hdr(): bpf_func & PAGE_MASK).
    header_pages = has_member(prog, "struct bpf_binary_header", "pages")
    ev.append(("bpf_header_pages", str(header_pages), "member bpf_binary_header.pages",
               'ed2d9e1a26cc ("bpf: Use size instead of pages in bpf_binary_header") (v5.18)'))

    rox_cache = has_symbol(prog, "execmem_cache")
    ev.append(("rox_cache", str(rox_cache), "symbol execmem_cache",
               '"execmem: add support for cache of large ROX pages" (Rapoport, 6.13 code)'))

    # 5.10: "Keep image as writeable" in bpf_jit_alloc_exec_page(); gone
    # when trampolines and the dispatcher moved to read-only images
    # (19c02415da25 "bpf: use bpf_prog_pack for bpf_dispatcher", v6.1).
    # A function gone from later kernels: kallsyms (DWARF or not) has it or not.
    images_writable = _has_function(prog, "bpf_jit_alloc_exec_page")
    ev.append(("bpf_images_writable", str(images_writable), "symbol bpf_jit_alloc_exec_page",
               '98e8627efcad ("bpf: Move BPF trampoline and dispatcher images to a W+X page") (v5.5)'))

    fill_zero = has_symbol(prog, "bpf_jit_fill_hole_with_zero")
    ev.append(("bpf_fill_zero", str(fill_zero), "symbol bpf_jit_fill_hole_with_zero",
               '19c02415da25 ("bpf: use bpf_prog_pack for bpf_dispatcher") (v6.1)'))

    mod_tree = has_symbol(prog, "mod_tree")
    ev.append(("mod_tree", str(mod_tree), "symbol mod_tree",
               '93c2e105f6bc ("module: Optimize __module_address() using a latched RB-tree") (v4.2)'))

    return ExecLayout(module_memory, prog_pack, bpf_kallsyms, prog_idr, dispatcher_rw_image,
                      kprobe_insn, ftrace_trampolines, execmem, rox_cache, header_pages, images_writable,
                      fill_zero, mod_tree, tuple(ev))


class RawModuleRegion(NamedTuple):
    module: str
    module_address: int  #: struct module *
    state: int
    kind: str  #: "module-text", "module-init-rodata", ...
    start: int
    size: int


class RawPack(NamedTuple):
    address: int  #: struct bpf_prog_pack *
    ptr: int  #: the pack's memory
    bitmap_offset: int  #: of ``bitmap[]`` in the struct


class RawBpfSym(NamedTuple):
    """One ``struct bpf_ksym`` on ``bpf_kallsyms``, or one prog from
    ``prog_idr`` that has none (``ksym`` 0)."""

    ksym: int
    start: int
    end: int
    name: str  #: the kallsyms name, e.g. ``bpf_prog_<tag>_<name>``
    prog: int  #: struct bpf_prog * (0 for trampolines, dispatchers)
    id: Optional[int]
    tag: Optional[str]
    prog_type: Optional[str]
    prog_name: Optional[str]  #: aux->name
    header: Optional[int]  #: bpf_binary_header of the JIT image
    header_size: Optional[int]  #: hdr->size: what the pack allocator handed out
    #: prog->jited_len: the code (before 5.18 ``end`` runs to the end of
    #: the image's pages, so the code is not start..end)
    jited_len: Optional[int] = None


class RawTextPage(NamedTuple):
    """A kprobe slot page, an ftrace trampoline or a dispatcher RW page."""

    kind: str
    owner: str
    start: int
    size: int
    detail: Dict[str, int]


class RawRoxCache(NamedTuple):
    busy: List[Tuple[int, int, bool]]  #: (start, end, pending free)
    free: List[Tuple[int, int]]


class _ProgOffsets(NamedTuple):
    aux_id: int
    aux_name: int
    aux_name_len: int
    aux_prog: int
    aux_ksym: int
    aux_size: int
    prog_type: int
    prog_tag: int
    prog_jited_len: int
    prog_func: int
    prog_aux: int
    prog_size: int
    types: Dict[int, str]  #: enum bpf_prog_type value -> "socket_filter", ...


def _cstr(buf: bytes) -> str:
    return buf.split(b"\0", 1)[0].decode("utf-8", "replace")


class ExecReader:
    """Bounded raw walks of the executable-memory bookkeeping of ``prog``."""

    def __init__(self, prog: drgn.Program, layout: Optional[ExecLayout] = None,
                 limit: int = DEFAULT_LIMIT) -> None:
        self.prog = prog
        self.layout = layout if layout is not None else detect_exec_layout(prog)
        self.limit = min(limit, MAX_ITEMS)

    def _address(self, name: str) -> Optional[int]:
        try:
            return int(self.prog[name].address_)
        except (KeyError, LookupError, TypeError, ValueError):
            return None

    # -- modules -----------------------------------------------------------

    def module_regions(self, log: WalkLog) -> List[RawModuleRegion]:
        """Every region of every module on ``modules`` (UNFORMED ones too:
        their memory is allocated)."""
        lay = self.layout
        head = self._address("modules")
        if lay.module_memory == "none" or head is None:
            return []
        prog = self.prog
        mt = prog.type("struct module")
        out: List[RawModuleRegion] = []
        off_list = drgn.offsetof(mt, "list")
        # Members read through drgn objects: a few dozen modules, and the
        # nested module_memory / module_layout arrays differ by version.
        for addr, _buf in list_walk(prog, head, off_list, off_list + 8, log, "modules", self.limit):
            out.extend(self.regions_of_module(addr, log, mt))
        return out

    def module_list(self, log: WalkLog) -> List[int]:
        """``struct module *`` of every module on ``modules``."""
        head = self._address("modules")
        if self.layout.module_memory == "none" or head is None:
            return []
        off_list = drgn.offsetof(self.prog.type("struct module"), "list")
        return [a for a, _b in list_walk(self.prog, head, off_list, off_list + 8, log, "modules", self.limit)]

    def regions_of_module(self, addr: int, log: WalkLog, mt: Optional[drgn.Type] = None) -> List[RawModuleRegion]:
        """The memory regions of the ``struct module`` at ``addr``."""
        prog = self.prog
        try:
            mod = drgn.Object(prog, mt if mt is not None else prog.type("struct module"), address=addr)
            name = mod.name.string_().decode("utf-8", "replace")
            state = int(mod.state.value_())
            if self.layout.module_memory == "mem":
                return list(self._mem_regions(mod, name, addr, state))
            return list(self._layout_regions(mod, name, addr, state))
        except drgn.FaultError as e:
            log.warn(f"module at {addr:#x}: unreadable ({e})")
            return []

    def module_tree(self, log: WalkLog) -> List[int]:
        """``struct module *`` of every module in ``mod_tree``, the latched
        rb-tree ``__module_address()`` searches -- independent of the
        ``modules`` list (:linux:`kernel/module/tree_lookup.c`)."""
        if not self.layout.mod_tree or self.layout.module_memory == "none":
            return []
        prog = self.prog
        try:
            root = self._address("mod_tree")
            rt = prog.type("struct mod_tree_root")
            lt = prog.type("struct latch_tree_root")
            nt = prog.type("struct mod_tree_node")
            seq = prog.read_u32(root + drgn.offsetof(rt, "root") + drgn.offsetof(lt, "seq"))
        except (LookupError, TypeError, ValueError, drgn.FaultError) as e:
            log.warn(f"mod_tree unreadable ({e})")
            return []
        if root is None:
            return []
        # latch_tree_find(): the copy the sequence's low bit selects (drgn _addrmod_tree)
        idx = seq & 1
        tree = root + drgn.offsetof(rt, "root") + drgn.offsetof(lt, "tree") + 8 * idx
        node_off = drgn.offsetof(nt, "node") + 24 * idx  # latch_tree_node.node[idx], rb_node is 24 bytes
        mod_off = drgn.offsetof(nt, "mod")
        out: List[int] = []
        seen: Set[int] = set()
        stack: List[int] = []
        try:
            top = prog.read_u64(tree)
        except drgn.FaultError:
            log.warn("mod_tree root unreadable")
            return []
        if top:
            stack.append(top)
        while stack and len(seen) < self.limit:
            rb = stack.pop()
            if rb in seen or not is_kernel_pointer(rb):
                log.warn(f"mod_tree: bad node {rb:#x}")
                continue
            seen.add(rb)
            try:
                b = prog.read(rb, 24)
                mod = prog.read_u64(rb - node_off + mod_off)
            except drgn.FaultError:
                log.warn(f"mod_tree: node {rb:#x} unreadable")
                continue
            right, left = _U64.unpack_from(b, 8)[0], _U64.unpack_from(b, 16)[0]
            if mod not in out:
                out.append(mod)
            stack.extend(c for c in (right, left) if c)
        return out

    def module_kobjects(self, log: WalkLog) -> List[int]:
        """``struct module *`` of each loaded module's ``/sys/module/NAME``
        kobject (``module_kset``; built-in modules' have none)."""
        prog = self.prog
        try:
            kset = prog.read_u64(self._address("module_kset") or 0)
            kt, ko = prog.type("struct kset"), prog.type("struct kobject")
            mk = prog.type("struct module_kobject")
        except (LookupError, TypeError, ValueError, drgn.FaultError):
            return []
        if not kset:
            return []
        head = kset + drgn.offsetof(kt, "list")
        o_entry = drgn.offsetof(ko, "entry")
        o_kobj, o_mod = drgn.offsetof(mk, "kobj"), drgn.offsetof(mk, "mod")
        out = []
        for kobj, _b in list_walk(prog, head, o_entry, o_entry + 16, log, "module_kset", self.limit):
            try:
                mod = prog.read_u64(kobj - o_kobj + o_mod)
            except drgn.FaultError:
                continue
            if mod:
                out.append(mod)
        return out

    def module_name(self, addr: int) -> Optional[str]:
        try:
            mt = self.prog.type("struct module")
            return _cstr(self.prog.read(addr + drgn.offsetof(mt, "name"), 56))
        except (LookupError, drgn.FaultError):
            return None

    def init_free_pending(self, log: WalkLog) -> List[int]:
        """Module init memory ``do_init_module()`` queued on
        ``init_free_list`` and not yet freed (``struct mod_initfree``: one
        pointer before 6.4, one per init type after)."""
        from kcoretool.kernel.walk import llist_walk

        prog = self.prog
        head = self._address("init_free_list")
        try:
            t = prog.type("struct mod_initfree")
        except LookupError:
            return []
        if head is None:
            return []
        ptrs = [m.offset // 8 for m in t.members or () if m.name != "node" and m.offset is not None]
        o_node = drgn.offsetof(t, "node")
        out: List[int] = []
        try:
            first = prog.read_u64(head)
        except drgn.FaultError:
            return []
        for _addr, buf in llist_walk(prog, first, o_node, t.size or 8, log, "init_free_list", self.limit):
            out.extend(v for i in ptrs if (v := _U64.unpack_from(buf, 8 * i)[0]))
        return out

    def bpf_idr(self, log: WalkLog) -> Tuple[Dict[int, int], Set[int]]:
        """(``struct bpf_prog *`` -> id of every program in ``prog_idr``,
        the subprograms those programs own: ``aux->func[0..func_cnt)``)."""
        prog = self.prog
        xa = self._address("prog_idr") if self.layout.prog_idr else None
        progs: Dict[int, int] = {}
        subs: Set[int] = set()
        if xa is None:
            return progs, subs
        try:
            at, pt = prog.type("struct bpf_prog_aux"), prog.type("struct bpf_prog")
            o_aux, o_func, o_cnt = drgn.offsetof(pt, "aux"), drgn.offsetof(at, "func"), drgn.offsetof(at, "func_cnt")
        except LookupError:
            return progs, subs
        idr_rt = xa + drgn.offsetof(prog.type("struct idr"), "idr_rt")
        for index, p in xarray_walk(prog, idr_rt, log, "prog_idr", self.limit):
            progs[p] = index
            try:
                aux = prog.read_u64(p + o_aux)
                cnt = prog.read_u32(aux + o_cnt)
                arr = prog.read_u64(aux + o_func)
                if arr and 0 < cnt < 4096:
                    b = prog.read(arr, 8 * cnt)
                    subs.update(_U64.unpack_from(b, 8 * i)[0] for i in range(cnt))
            except drgn.FaultError:
                log.warn(f"prog_idr {index}: subprograms unreadable")
        return progs, subs

    # -- the kernel image and the other executable memory ----------------------

    def symbol(self, name: str) -> Optional[int]:
        try:
            return int(self.prog.symbol(name).address)
        except (LookupError, ValueError):
            return None

    def realmode_text(self, log: WalkLog) -> Optional[Tuple[int, int]]:
        """The real-mode trampoline's text in the direct map, which
        ``set_real_mode_permissions()`` makes executable
        (:linux:`arch/x86/realmode/init.c`): ``__va(text_start)`` to
        ``__va(PAGE_ALIGN(ro_end))``."""
        prog = self.prog
        hdr_sym, pob = self._address("real_mode_header"), self._address("page_offset_base")
        if hdr_sym is None:
            return None
        try:
            t = prog.type("struct real_mode_header")
            o_text, o_ro = drgn.offsetof(t, "text_start"), drgn.offsetof(t, "ro_end")
        except LookupError:
            return None
        try:
            hdr = prog.read_u64(hdr_sym)
            text = prog.read_u32(hdr + o_text)
            ro_end = prog.read_u32(hdr + o_ro)
            base = prog.read_u64(pob) if pob is not None else 0xFFFF_8880_0000_0000
        except drgn.FaultError as e:
            log.warn(f"real_mode_header unreadable ({e})")
            return None
        return base + text, base + ((ro_end + 4095) & ~4095)

    def classic_bpf(self, log: WalkLog) -> List[Tuple[str, int, int]]:
        """(owner, bpf_func, jited_len) of the JIT'd classic BPF filters the
        kernel keeps without an ID or a symbol: the PTP classifier that
        ``sock_init()`` creates at boot (``ptp_insns``,
        :linux:`net/core/ptp_classifier.c`), every task's seccomp
        filters (``task->seccomp.filter``, then ``->prev``) and the socket
        filters of every process's open sockets."""
        prog = self.prog
        out: List[Tuple[str, int]] = []
        try:
            pt = prog.type("struct bpf_prog")
            o_func, o_len = drgn.offsetof(pt, "bpf_func"), drgn.offsetof(pt, "jited_len")
        except LookupError:
            return []
        ptp = self._address("ptp_insns")
        if ptp is not None:
            try:
                p = prog.read_u64(ptp)
                if p:
                    out.append(("ptp_classifier", p))
            except drgn.FaultError:
                log.warn("ptp_insns unreadable")
        out.extend(self._seccomp_filters(log))
        out.extend(self._socket_filters(log))
        res = []
        for who, p in out:
            try:
                func, n = prog.read_u64(p + o_func), prog.read_u32(p + o_len)
            except drgn.FaultError:
                log.warn(f"{who} filter {p:#x} unreadable")
                continue
            if func and n and is_kernel_pointer(func & ~7):
                res.append((who, func, n))
        return res

    def _seccomp_filters(self, log: WalkLog) -> List[Tuple[str, int]]:
        from kcoretool.kernel.task import TaskReader

        prog = self.prog
        try:
            tt = prog.type("struct task_struct")
            o_filter = drgn.offsetof(tt, "seccomp") + drgn.offsetof(prog.type("struct seccomp"), "filter")
            ft = prog.type("struct seccomp_filter")
            o_prev, o_prog = drgn.offsetof(ft, "prev"), drgn.offsetof(ft, "prog")
            tasks = TaskReader(prog)
        except (LookupError, ValueError):
            return []  # no seccomp (CONFIG_SECCOMP_FILTER) or no task types
        out: List[Tuple[str, int]] = []
        seen = set()
        for leader in tasks.for_each_process(log, self.limit):
            rt = tasks.read_task(leader)
            threads = list(tasks.for_each_thread(rt, log, self.limit)) if rt is not None else [leader]
            for t in threads or [leader]:
                try:
                    f = prog.read_u64(t + o_filter)
                    n = 0
                    while f and f not in seen and n < 1024:
                        seen.add(f)
                        out.append(("seccomp", prog.read_u64(f + o_prog)))
                        f = prog.read_u64(f + o_prev)
                        n += 1
                except drgn.FaultError:
                    log.warn(f"task {t:#x}: seccomp filter unreadable")
        return out

    def _socket_filters(self, log: WalkLog) -> List[Tuple[str, int]]:
        """Classic BPF attached to sockets (``SO_ATTACH_FILTER``: libpcap,
        DHCP clients), through each process's open files: a file whose
        ``f_op`` is ``&socket_file_ops`` holds its ``struct socket`` in
        ``private_data``, then ``->sk->sk_filter->prog``.  An eBPF program
        attached with ``SO_ATTACH_BPF`` has an ID (``prog->aux->id``, since
        dc4bb0e23561 "bpf: Introduce bpf_prog ID", v4.13) and is in
        ``prog_idr`` already: only ID-less (classic) programs are taken."""
        from kcoretool.kernel.task import TaskReader

        prog = self.prog
        try:
            sfo = prog.symbol("socket_file_ops").address
        except LookupError:
            return []  # no sockets (CONFIG_NET=n)
        try:
            off = drgn.offsetof
            o_files = off(prog.type("struct task_struct"), "files")
            o_fdt = off(prog.type("struct files_struct"), "fdt")
            fdt_t = prog.type("struct fdtable")
            o_max, o_fd = off(fdt_t, "max_fds"), off(fdt_t, "fd")
            file_t = prog.type("struct file")
            o_fop, o_priv = off(file_t, "f_op"), off(file_t, "private_data")
            o_sk = off(prog.type("struct socket"), "sk")
            o_filter = off(prog.type("struct sock"), "sk_filter")
            o_prog = off(prog.type("struct sk_filter"), "prog")
            o_aux = off(prog.type("struct bpf_prog"), "aux")
            o_id = off(prog.type("struct bpf_prog_aux"), "id")
            tasks = TaskReader(prog)
        except (LookupError, ValueError):
            return []
        out: List[Tuple[str, int]] = []
        seen_files, seen_progs = set(), set()
        for leader in tasks.for_each_process(log, self.limit):
            try:
                files = prog.read_u64(leader + o_files)
                if not files or files in seen_files:  # kernel threads; CLONE_FILES shares the table
                    continue
                seen_files.add(files)
                fdt = prog.read_u64(files + o_fdt)
                n = min(prog.read_u32(fdt + o_max), self.limit)
                fds = prog.read(prog.read_u64(fdt + o_fd), 8 * n)
            except drgn.FaultError:
                log.warn(f"task {leader:#x}: open files unreadable")
                continue
            for i in range(n):
                f = int.from_bytes(fds[8 * i:8 * i + 8], "little")
                if not f:
                    continue
                try:
                    if prog.read_u64(f + o_fop) != sfo:
                        continue
                    sk = prog.read_u64(prog.read_u64(f + o_priv) + o_sk)
                    filt = prog.read_u64(sk + o_filter) if sk else 0
                    p = prog.read_u64(filt + o_prog) if filt else 0
                    if not p or p in seen_progs:
                        continue
                    seen_progs.add(p)
                    if prog.read_u32(prog.read_u64(p + o_aux) + o_id) == 0:
                        rt = tasks.read_task(leader)
                        out.append((f"socket filter of {rt.comm}[{rt.pid}]" if rt is not None else "socket filter", p))
                except drgn.FaultError:
                    log.warn(f"task {leader:#x}: socket of fd {i} unreadable")
        return out

    def _mem_types(self) -> List[Tuple[int, str]]:
        """``enum mod_mem_type`` as (value, kind): MOD_INIT_RODATA -> module-init-rodata."""
        t = self.prog.type("enum mod_mem_type")
        out = []
        for e in t.enumerators or ():
            if e.name.startswith("MOD_") and e.name not in ("MOD_MEM_NUM_TYPES", "MOD_INVALID"):
                out.append((e.value, "module-" + e.name[4:].lower().replace("_", "-")))
        return out

    def _mem_regions(self, mod: drgn.Object, name: str, addr: int, state: int) -> Iterator[RawModuleRegion]:
        for value, kind in self._mem_types():
            m = mod.mem[value]
            base, size = int(m.base.value_()), int(m.size.value_())
            if base and size:
                yield RawModuleRegion(name, addr, state, kind, base, size)

    @staticmethod
    def _layout_regions(mod: drgn.Object, name: str, addr: int, state: int) -> Iterator[RawModuleRegion]:
        # <= 6.3 layout_sections(): [0, text_size) text, [text_size, ro_size)
        # rodata, [ro_size, ro_after_init_size) ro_after_init, the rest data.
        for member, prefix in (("core_layout", "module-"), ("init_layout", "module-init-")):
            lay = getattr(mod, member)
            base = int(lay.base.value_())
            if not base:
                continue
            size, text, ro = int(lay.size), int(lay.text_size), int(lay.ro_size)
            roai = int(lay.ro_after_init_size)
            for kind, lo, hi in (("text", 0, text), ("rodata", text, ro),
                                 ("ro-after-init", ro, roai), ("data", roai, size)):
                if hi > lo:
                    yield RawModuleRegion(name, addr, state, prefix + kind, base + lo, hi - lo)

    # -- BPF ---------------------------------------------------------------

    def packs(self, log: WalkLog) -> List[RawPack]:
        head = self._address("pack_list") if self.layout.prog_pack else None
        if head is None:
            return []
        t = self.prog.type("struct bpf_prog_pack")
        off_list, off_ptr = drgn.offsetof(t, "list"), drgn.offsetof(t, "ptr")
        off_bitmap = drgn.offsetof(t, "bitmap")
        return [RawPack(addr, _U64.unpack_from(buf, off_ptr)[0], off_bitmap)
                for addr, buf in list_walk(self.prog, head, off_list, off_bitmap, log, "pack_list", self.limit)]

    def pack_bitmap(self, pack: RawPack, nbits: int) -> Optional[bytes]:
        try:
            return self.prog.read(pack.address + pack.bitmap_offset, (nbits + 7) // 8)
        except drgn.FaultError:
            return None

    def _prog_offsets(self) -> _ProgOffsets:
        """Offsets of the bpf_prog_aux and bpf_prog members read, resolved once."""
        prog = self.prog
        aux_t, prog_t = prog.type("struct bpf_prog_aux"), prog.type("struct bpf_prog")
        o = drgn.offsetof
        name_len = aux_t.member("name").type.length or 16
        types: Dict[int, str] = {}
        et = type_or_none(prog, "enum bpf_prog_type")
        for e in (et.enumerators or ()) if et is not None else ():
            name = e.name
            types[e.value] = name[len("BPF_PROG_TYPE_"):].lower() if name.startswith("BPF_PROG_TYPE_") else name
        off = _ProgOffsets(o(aux_t, "id"), o(aux_t, "name"), name_len, o(aux_t, "prog"), o(aux_t, "ksym"), 0,
                           o(prog_t, "type"), o(prog_t, "tag"), o(prog_t, "jited_len"), o(prog_t, "bpf_func"),
                           o(prog_t, "aux"), 0, types)
        return off._replace(aux_size=max(off.aux_id + 4, off.aux_name + name_len, off.aux_prog + 8),
                            prog_size=max(off.prog_type, off.prog_tag, off.prog_jited_len, off.prog_func,
                                          off.prog_aux) + 8)

    def _read_prog(self, off: _ProgOffsets, prog_addr: int) -> Optional[Tuple[int, str, int, int, int]]:
        """(type, tag, jited_len, bpf_func, aux) of a struct bpf_prog."""
        try:
            b = self.prog.read(prog_addr, off.prog_size)
        except drgn.FaultError:
            return None
        return (_U32.unpack_from(b, off.prog_type)[0], b[off.prog_tag:off.prog_tag + 8].hex(),
                _U32.unpack_from(b, off.prog_jited_len)[0], _U64.unpack_from(b, off.prog_func)[0],
                _U64.unpack_from(b, off.prog_aux)[0])

    def _read_aux(self, off: _ProgOffsets, aux_addr: int) -> Optional[Tuple[int, str, int]]:
        """(id, name, prog) of a struct bpf_prog_aux."""
        try:
            b = self.prog.read(aux_addr, off.aux_size)
        except drgn.FaultError:
            return None
        return (_U32.unpack_from(b, off.aux_id)[0], _cstr(b[off.aux_name:off.aux_name + off.aux_name_len]),
                _U64.unpack_from(b, off.aux_prog)[0])

    def header_of(self, func: int) -> int:
        """``bpf_jit_binary_hdr()``: the header of the JIT image holding ``func``."""
        align = 4096 if self.layout.bpf_header_pages else BPF_PROG_CHUNK_SIZE
        return func & ~(align - 1)

    def header_size(self, header: int) -> Optional[int]:
        """The bytes the JIT allocator handed out at ``header``:
        ``bpf_binary_header.size`` (5.18+), or ``.pages`` pages before."""
        try:
            n = self.prog.read_u32(header)
        except drgn.FaultError:
            return None
        return n * 4096 if self.layout.bpf_header_pages else n

    def bpf_symbols(self, log: WalkLog) -> List[RawBpfSym]:
        """Every ``bpf_ksym`` on ``bpf_kallsyms`` (programs and subprograms,
        trampolines, dispatchers, struct_ops), then each ``prog_idr`` program
        that has no symbol there (e.g. loaded without CAP_BPF)."""
        prog = self.prog
        out: List[RawBpfSym] = []
        dec: Optional[_ProgOffsets] = None
        seen_progs = set()
        head = self._address("bpf_kallsyms") if self.layout.bpf_kallsyms else None
        if head is not None:
            kt = prog.type("struct bpf_ksym")
            o_start, o_end = drgn.offsetof(kt, "start"), drgn.offsetof(kt, "end")
            o_name, name_len = drgn.offsetof(kt, "name"), kt.member("name").type.length or 512
            o_lnode, o_isprog = drgn.offsetof(kt, "lnode"), drgn.offsetof(kt, "prog")
            size = max(o_isprog + 1, o_name + name_len)
            for addr, buf in list_walk(prog, head, o_lnode, size, log, "bpf_kallsyms", self.limit):
                start, end = _U64.unpack_from(buf, o_start)[0], _U64.unpack_from(buf, o_end)[0]
                name = _cstr(buf[o_name:o_name + name_len])
                if not buf[o_isprog]:
                    out.append(RawBpfSym(addr, start, end, name, 0, None, None, None, None, None, None))
                    continue
                if dec is None:
                    dec = self._prog_offsets()
                aux = self._read_aux(dec, addr - dec.aux_ksym)
                p = self._read_prog(dec, aux[2]) if aux is not None else None
                if aux is None or p is None:
                    log.warn(f"bpf ksym {name} at {addr:#x}: its program is unreadable")
                    out.append(RawBpfSym(addr, start, end, name, 0, None, None, None, None, None, None))
                    continue
                seen_progs.add(aux[2])
                hdr = self.header_of(start)
                out.append(RawBpfSym(addr, start, end, name, aux[2], aux[0] or None, p[1],
                                     dec.types.get(p[0], str(p[0])), aux[1], hdr, self.header_size(hdr), p[2]))
        xa = self._address("prog_idr") if self.layout.prog_idr else None
        if xa is not None:
            if dec is None:
                dec = self._prog_offsets()
            idr_rt = xa + drgn.offsetof(prog.type("struct idr"), "idr_rt")
            for index, p_addr in xarray_walk(prog, idr_rt, log, "prog_idr", self.limit):
                if p_addr in seen_progs:
                    continue
                p = self._read_prog(dec, p_addr)
                aux = self._read_aux(dec, p[4]) if p is not None else None
                if p is None or aux is None:
                    log.warn(f"prog_idr {index}: program at {p_addr:#x} is unreadable")
                    continue
                ptype, tag, jited_len, func = p[0], p[1], p[2], p[3]
                if not func or not jited_len or not is_kernel_pointer(func & ~7):
                    continue  # not JIT'd: interpreted, no executable memory
                hdr = self.header_of(func)
                name = f"bpf_prog_{tag}" + (f"_{aux[1]}" if aux[1] else "")
                out.append(RawBpfSym(0, func, func + jited_len, name, p_addr, aux[0] or None, tag,
                                     dec.types.get(ptype, str(ptype)), aux[1], hdr, self.header_size(hdr),
                                     jited_len))
        return out

    def dispatcher_rw_pages(self, log: WalkLog, page_size: int) -> List[RawTextPage]:
        """The XDP dispatcher's RW image: an executable-range page with no
        ksym (its RO image is on bpf_kallsyms)."""
        if not self.layout.dispatcher_rw_image:
            return []
        try:
            d = self.prog["bpf_dispatcher_xdp"]
            rw = int(d.rw_image.value_())
        except (KeyError, LookupError, drgn.FaultError):
            return []
        if not rw:
            return []
        return [RawTextPage("bpf-dispatcher", "bpf_dispatcher_xdp (rw image)", rw, page_size, {})]

    # -- kprobes, ftrace ---------------------------------------------------

    def kprobe_pages(self, log: WalkLog, page_size: int) -> List[RawTextPage]:
        if not self.layout.kprobe_insn:
            return []
        prog = self.prog
        out: List[RawTextPage] = []
        pt = prog.type("struct kprobe_insn_page")
        o_list, o_insns, o_nused = (drgn.offsetof(pt, m) for m in ("list", "insns", "nused"))
        for cache_name, kind in (("kprobe_insn_slots", "kprobe-insn"), ("kprobe_optinsn_slots", "kprobe-optinsn")):
            try:
                cache = prog[cache_name]
                sym = cache.sym.string_().decode() if cache.sym else cache_name
                head = int(cache.pages.address_)
            except (KeyError, LookupError, drgn.FaultError):
                continue
            size = max(o_list + 16, o_insns + 8, o_nused + 4)
            for addr, buf in list_walk(prog, head, o_list, size, log, cache_name, self.limit):
                insns = _U64.unpack_from(buf, o_insns)[0]
                out.append(RawTextPage(kind, sym, insns, page_size,
                                       {"nused": _U32.unpack_from(buf, o_nused)[0], "page": addr}))
        return out

    def ftrace_trampolines(self, log: WalkLog, symbolize: Callable[[int], Optional[str]]) -> List[RawTextPage]:
        head = self._address("ftrace_ops_trampoline_list") if self.layout.ftrace_trampolines else None
        if head is None:
            return []
        ot = self.prog.type("struct ftrace_ops")
        o_list, o_tramp = drgn.offsetof(ot, "list"), drgn.offsetof(ot, "trampoline")
        o_size, o_func = drgn.offsetof(ot, "trampoline_size"), drgn.offsetof(ot, "func")
        out: List[RawTextPage] = []
        size = max(o_list + 16, o_tramp + 8, o_size + 8, o_func + 8)
        for addr, buf in list_walk(self.prog, head, o_list, size, log, "ftrace_ops_trampoline_list", self.limit):
            tramp = _U64.unpack_from(buf, o_tramp)[0]
            if not tramp:
                continue
            func = _U64.unpack_from(buf, o_func)[0]
            fname = symbolize(func)
            out.append(RawTextPage("ftrace-trampoline", "ftrace_trampoline" + (f" ({fname})" if fname else ""),
                                   tramp, _U64.unpack_from(buf, o_size)[0] & 0xFFFFFFFF, {"ops": addr}))
        return out

    # -- execmem ROX cache -------------------------------------------------

    def rox_cache(self, log: WalkLog) -> Optional[RawRoxCache]:
        if not self.layout.rox_cache:
            return None
        try:
            cache = self.prog["execmem_cache"]
            busy_mt = int(cache.busy_areas.address_)
            free_mt = int(cache.free_areas.address_)
        except (KeyError, LookupError, drgn.FaultError):
            return None
        busy = [(lo, hi + 1, bool(v & PENDING_FREE_MASK))
                for lo, hi, v in mt_for_each(self.prog, busy_mt, log, "execmem_cache.busy_areas", limit=self.limit)]
        free = [(lo, hi + 1) for lo, hi, _v in
                mt_for_each(self.prog, free_mt, log, "execmem_cache.free_areas", limit=self.limit)]
        return RawRoxCache(busy, free)
