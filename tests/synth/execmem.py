# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Synthetic executable memory on top of a :class:`~tests.synth.layouts.SynthKernel`:
modules (``mod->mem[]`` 6.4+ or ``core_layout``/``init_layout`` before),
``bpf_prog_pack`` packs with programs, trampolines, a dispatcher, kprobe slot
pages, ftrace trampolines and execmem's ROX cache (a maple tree) -- the
layouts no lab kernel has (pre-6.4 modules, the ROX cache of 6.18+) and
bulk (10,000 programs).

Struct members follow the kernel sources cited in
../shared/reference/exec-and-task-memory.md Part 1; only what kcoretool reads
is spelled out. The executable range gets its own memory segment, so the
JIT headers and code are readable.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Dict, List, Sequence, Tuple

from tests.synth.layouts import MODULES_VADDR, PAGE, VM_ALLOC, AreaSpec, Scene, SynthKernel

PACK_SIZE = 2 << 20
CHUNK = 64
ULONG_MAX = (1 << 64) - 1
MOD_TYPES = ("MOD_TEXT", "MOD_DATA", "MOD_RODATA", "MOD_RO_AFTER_INIT", "MOD_INIT_TEXT", "MOD_INIT_DATA",
             "MOD_INIT_RODATA")


@dataclasses.dataclass
class ModuleSpec:
    name: str
    #: "mem": {MOD_* name: (base, size)}; "layout": {"core"|"init": (base, size, text, ro, ro_after_init)}
    regions: Dict[str, Tuple[int, ...]]
    state: int = 0


@dataclasses.dataclass
class ProgSpec:
    name: str
    tag: bytes
    id: int
    offset: int  #: of the bpf_binary_header in the pack (64-aligned)
    alloc: int  #: hdr->size
    code_off: int = 8  #: bpf_func - header (header + random start)
    jited_len: int = 0  #: default: alloc - code_off - 16
    ksym: bool = True
    prog_type: int = 1


@dataclasses.dataclass
class ExecSpec:
    modules: List[ModuleSpec] = dataclasses.field(default_factory=list)
    #: pack start -> programs in it
    packs: Dict[int, List[ProgSpec]] = dataclasses.field(default_factory=dict)
    #: (start, end, name) symbols with prog=false (trampolines, dispatchers)
    images: List[Tuple[int, int, str]] = dataclasses.field(default_factory=list)
    #: extra used chunk ranges (pack start, offset, size) nobody owns
    orphans: List[Tuple[int, int, int]] = dataclasses.field(default_factory=list)
    dispatcher_rw: int = 0
    kprobe_pages: List[int] = dataclasses.field(default_factory=list)
    ftrace: List[Tuple[int, int]] = dataclasses.field(default_factory=list)  #: (trampoline, size)
    #: ROX cache: busy (start, size, pending) and free (start, size) ranges
    rox_busy: List[Tuple[int, int, bool]] = dataclasses.field(default_factory=list)
    rox_free: List[Tuple[int, int]] = dataclasses.field(default_factory=list)


def areas_for(spec: ExecSpec, module_layout: str, rox_areas: Sequence[int] = ()) -> List[AreaSpec]:
    """The vmap areas holding ``spec``'s allocations (each with its guard page)."""
    def in_rox(a: int) -> bool:  # sub-allocations of the ROX cache have no area of their own
        return any(r <= a < r + PACK_SIZE for r in rox_areas)

    out = [AreaSpec(p, PACK_SIZE + PAGE, VM_ALLOC, "bpf_prog_pack_alloc") for p in spec.packs]
    for m in spec.modules:
        for r in m.regions.values():
            size = r[1]
            if not in_rox(r[0]):
                out.append(AreaSpec(r[0], (size + PAGE - 1) // PAGE * PAGE + PAGE, VM_ALLOC, "module_alloc"))
    for a in spec.kprobe_pages + [spec.dispatcher_rw] * bool(spec.dispatcher_rw):
        if not in_rox(a):
            out.append(AreaSpec(a, 2 * PAGE, VM_ALLOC, "module_alloc"))
    for t, size in spec.ftrace:
        out.append(AreaSpec(t, (size + PAGE - 1) // PAGE * PAGE + PAGE, VM_ALLOC, "module_alloc"))
    for a in rox_areas:
        out.append(AreaSpec(a, PACK_SIZE + PAGE, VM_ALLOC | 0x400, "execmem_vmalloc"))
    return out


def build(layout: str, spec: ExecSpec, module_layout: str = "mem", rox_areas: Sequence[int] = (),
          image_size: int = 1 << 24) -> SynthKernel:
    """A synthetic kernel of vmalloc ``layout`` holding ``spec``."""
    k = SynthKernel(layout, Scene(areas=areas_for(spec, module_layout, rox_areas)), image_size)
    _Writer(k, spec, module_layout, bool(rox_areas)).write()
    return k


class _Writer:
    def __init__(self, k: SynthKernel, spec: ExecSpec, module_layout: str, rox: bool) -> None:
        self.k, self.img, self.spec, self.ml, self.rox = k, k.img, spec, module_layout, rox
        # The module range, backed by its own buffer.
        self.xmem = bytearray(64 << 20)
        xmem = self.xmem

        def read(address: int, count: int, offset: int, physical: bool) -> bytes:
            return bytes(xmem[offset:offset + count])

        k.prog.add_memory_segment(MODULES_VADDR, len(xmem), read)

    def xw(self, addr: int, data: bytes) -> None:
        off = addr - MODULES_VADDR
        self.xmem[off:off + len(data)] = data

    # -- types ---------------------------------------------------------------

    def types(self) -> None:
        img, p = self.img, self.k.prog
        it = img.types["int"]
        img.types["enum mod_mem_type"] = p.enum_type("mod_mem_type", it, [
            __import__("drgn").TypeEnumerator(n, i) for i, n in enumerate(MOD_TYPES + ("MOD_MEM_NUM_TYPES",))])
        img.types["enum bpf_prog_type"] = p.enum_type("bpf_prog_type", img.types["unsigned int"], [
            __import__("drgn").TypeEnumerator(n, i) for i, n in enumerate(
                ("BPF_PROG_TYPE_UNSPEC", "BPF_PROG_TYPE_SOCKET_FILTER", "BPF_PROG_TYPE_KPROBE"))])
        img.types["unsigned short"] = p.int_type("unsigned short", 2, False)
        if self.ml == "mem":
            img.struct("module_memory", [("void *", "base"), ("unsigned int", "size"),
                                         ("unsigned long[7]", "mtn")])
            mm = [(f"struct module_memory[{len(MOD_TYPES)}]", "mem")]
        else:
            img.struct("module_layout", [("void *", "base"), ("unsigned int", "size"),
                                         ("unsigned int", "text_size"), ("unsigned int", "ro_size"),
                                         ("unsigned int", "ro_after_init_size"), ("unsigned long[7]", "mtn")])
            mm = [("struct module_layout", "core_layout"), ("struct module_layout", "init_layout")]
        img.struct("module", [("int", "state"), ("struct list_head", "list"), ("char[56]", "name"),
                              ("unsigned long[40]", "_pad")] + mm + [("unsigned long[8]", "_tail")])
        img.struct("bpf_prog_pack", [("struct list_head", "list"), ("void *", "ptr"),
                                     ("unsigned long[0]", "bitmap")])
        img.struct("bpf_ksym", [("unsigned long", "start"), ("unsigned long", "end"), ("char[512]", "name"),
                                ("struct list_head", "lnode"), ("unsigned long[6]", "tnode"), ("bool", "prog")])
        img.struct("bpf_prog_aux", [("unsigned int", "refcnt"), ("unsigned int", "id"),
                                    ("unsigned long[12]", "_pad"), ("struct bpf_prog *", "prog"),
                                    ("char[16]", "name"), ("struct bpf_ksym", "ksym")])
        img.struct("bpf_prog", [("unsigned short", "pages"), ("unsigned short", "bits"),
                                ("enum bpf_prog_type", "type"), ("unsigned int", "expected_attach_type"),
                                ("unsigned int", "len"), ("unsigned int", "jited_len"), ("u8[8]", "tag"),
                                ("unsigned long[2]", "_pad"), ("struct bpf_prog_aux *", "aux"),
                                ("void *", "orig_prog"), ("void *", "bpf_func")])
        img.struct("idr", [("struct xarray", "idr_rt"), ("unsigned int", "idr_base"),
                           ("unsigned int", "idr_next")])
        img.struct("bpf_dispatcher", [("unsigned long[4]", "mutex"), ("void *", "func"),
                                      ("unsigned long[48]", "progs"), ("int", "num_progs"), ("void *", "image"),
                                      ("void *", "rw_image"), ("unsigned int", "image_off"),
                                      ("struct bpf_ksym", "ksym")])
        img.struct("kprobe_insn_cache", [("unsigned long[4]", "mutex"), ("void *", "alloc"), ("void *", "free"),
                                         ("char *", "sym"), ("struct list_head", "pages"),
                                         ("unsigned long", "insn_size"), ("int", "nr_garbage")])
        img.struct("kprobe_insn_page", [("struct list_head", "list"), ("u8 *", "insns"), ("void *", "cache"),
                                        ("int", "nused"), ("int", "ngarbage"), ("char[0]", "slot_used")])
        # 6.1/6.12 order: the trampoline fields come before the list node
        img.struct("ftrace_ops", [("void *", "func"), ("void *", "next"), ("unsigned long", "flags"),
                                  ("void *", "private"), ("unsigned long[6]", "_pad"), ("unsigned long", "trampoline"),
                                  ("unsigned long", "trampoline_size"), ("struct list_head", "list")])
        img.struct("maple_tree", [("spinlock_t", "ma_lock"), ("unsigned int", "ma_flags"), ("void *", "ma_root")])
        img.struct("execmem_cache", [("unsigned long[4]", "mutex"), ("struct maple_tree", "busy_areas"),
                                     ("struct maple_tree", "free_areas"), ("unsigned int", "pending_free_cnt")])

    # -- data ------------------------------------------------------------------

    def write(self) -> None:
        self.types()
        img = self.img
        img.function("execmem_alloc", 0xFFFFFFFF81200000)
        self.modules()
        self.bpf()
        self.kprobes()
        if self.rox:
            self.rox_cache()

    def _list(self, name: str) -> int:
        head = self.img.global_var(name, "struct list_head")
        self.k._init_list(head)
        return head

    def modules(self) -> None:
        img = self.img
        head = self._list("modules")
        nodes = []
        for m in self.spec.modules:
            a = img.alloc_struct("module")
            img.wbytes(a + img.offsetof("module", "name"), m.name.encode())
            img.put("module", a, state=m.state)
            if self.ml == "mem":
                for key, (base, size) in m.regions.items():
                    i = MOD_TYPES.index(key)
                    self._mem(a, i, base, size)
            else:
                for key, vals in m.regions.items():
                    base, size, text, ro, roai = vals
                    img.put("module", a, **{f"{key}_layout__base": base, f"{key}_layout__size": size,
                                            f"{key}_layout__text_size": text, f"{key}_layout__ro_size": ro,
                                            f"{key}_layout__ro_after_init_size": roai})
            nodes.append(a + img.offsetof("module", "list"))
        self.k._link(head, nodes)

    def _mem(self, mod: int, i: int, base: int, size: int) -> None:
        img = self.img
        off = img.offsetof("module", "mem") + i * img.sizeof("module_memory")
        img.w64(mod + off, base)
        img.w32(mod + off + 8, size)

    def bpf(self) -> None:
        img, spec = self.img, self.spec
        packs_head = self._list("pack_list")
        ks_head = self._list("bpf_kallsyms")
        idr = img.global_var("prog_idr", "struct idr")
        nchunks = PACK_SIZE // CHUNK
        o_bitmap = img.offsetof("bpf_prog_pack", "bitmap")
        o_ksym = img.offsetof("bpf_prog_aux", "ksym")
        o_lnode = img.offsetof("bpf_ksym", "lnode")
        o_kname = img.offsetof("bpf_ksym", "name")
        o_aname = img.offsetof("bpf_prog_aux", "name")
        o_tag = img.offsetof("bpf_prog", "tag")
        aux_sz, prog_sz = img.sizeof("bpf_prog_aux"), img.sizeof("bpf_prog")
        pack_nodes, ks_nodes = [], []
        idr_entries: Dict[int, int] = {}
        orphans: Dict[int, List[Tuple[int, int]]] = {}
        for p, off, size in spec.orphans:
            orphans.setdefault(p, []).append((off, size))
        # Everything in one bytearray per pack; bitmaps as Python ints.
        for pack, progs in spec.packs.items():
            bits = 0
            pa = img.alloc(img.sizeof("bpf_prog_pack") + nchunks // 8, 64)
            img.put("bpf_prog_pack", pa, ptr=pack)
            pack_nodes.append(pa)
            body = bytearray(b"\xcc" * PACK_SIZE)
            for ps in progs:
                func = pack + ps.offset + ps.code_off
                jl = ps.jited_len or ps.alloc - ps.code_off - 16
                struct.pack_into("<I", body, ps.offset, ps.alloc)
                body[ps.offset + ps.code_off:ps.offset + ps.code_off + jl] = bytes((ps.id + i) & 0xFF
                                                                                    for i in range(min(jl, 64))) \
                    + bytes(max(0, jl - 64))
                c0, c1 = ps.offset // CHUNK, (ps.offset + ps.alloc) // CHUNK
                bits |= ((1 << (c1 - c0)) - 1) << c0
                aux = img.alloc(aux_sz, 64)
                pr = img.alloc(prog_sz, 64)
                img.put("bpf_prog", pr, type=ps.prog_type, jited_len=jl, aux=aux, bpf_func=func)
                img.wbytes(pr + o_tag, ps.tag)
                img.put("bpf_prog_aux", aux, id=ps.id, prog=pr)
                img.wbytes(aux + o_aname, ps.name.encode()[:15])
                if ps.ksym:
                    ks = aux + o_ksym
                    img.put("bpf_ksym", ks, start=func, end=func + jl, prog=1)
                    img.wbytes(ks + o_kname, f"bpf_prog_{ps.tag.hex()}_{ps.name}".encode())
                    ks_nodes.append(ks + o_lnode)
                if ps.id:
                    idr_entries[ps.id] = pr
            for off, size in orphans.get(pack, []):
                struct.pack_into("<I", body, off, size)
                bits |= ((1 << (size // CHUNK)) - 1) << (off // CHUNK)
            for s, e, _n in spec.images:
                if pack <= s < pack + PACK_SIZE:
                    c0, c1 = (s - pack) // CHUNK, (e - pack + CHUNK - 1) // CHUNK
                    bits |= ((1 << (c1 - c0)) - 1) << c0
            img.wbytes(pa + o_bitmap, bits.to_bytes(nchunks // 8, "little"))
            self.xw(pack, bytes(body))
        for s, e, name in spec.images:
            ks = img.alloc_struct("bpf_ksym")
            img.put("bpf_ksym", ks, start=s, end=e, prog=0)
            img.wbytes(ks + o_kname, name.encode())
            ks_nodes.append(ks + o_lnode)
        self.k._link(packs_head, [p + img.offsetof("bpf_prog_pack", "list") for p in pack_nodes])
        self.k._link(ks_head, ks_nodes)
        if len(idr_entries) <= 64:
            self.k._xarray(idr + img.offsetof("idr", "idr_rt"), idr_entries)
        d = img.global_var("bpf_dispatcher_xdp", "struct bpf_dispatcher")
        img.put("bpf_dispatcher", d, rw_image=spec.dispatcher_rw)

    def kprobes(self) -> None:
        img, spec = self.img, self.spec
        cache = img.global_var("kprobe_insn_slots", "struct kprobe_insn_cache")
        sym = img.alloc(32)
        img.wbytes(sym, b"kprobe_insn_page\0")
        img.put("kprobe_insn_cache", cache, sym=sym, insn_size=15)
        pages = []
        for i, insns in enumerate(spec.kprobe_pages):
            kp = img.alloc(img.sizeof("kprobe_insn_page") + 273, 64)
            img.put("kprobe_insn_page", kp, insns=insns, cache=cache, nused=i + 1)
            pages.append(kp)
        self.k._link(cache + img.offsetof("kprobe_insn_cache", "pages"), pages)
        head = self._list("ftrace_ops_trampoline_list")
        ops = []
        fn = self.k.caller("kprobe_ftrace_handler") - 0x4B
        for t, size in spec.ftrace:
            o = img.alloc_struct("ftrace_ops")
            img.put("ftrace_ops", o, func=fn, trampoline=t, trampoline_size=size)
            ops.append(o + img.offsetof("ftrace_ops", "list"))
        self.k._link(head, ops)

    def rox_cache(self) -> None:
        img, spec = self.img, self.spec
        c = img.global_var("execmem_cache", "struct execmem_cache")
        busy = [(s, s + n - 1, s | (0x800 if pend else 0)) for s, n, pend in spec.rox_busy]
        free = [(s, s + n - 1, s) for s, n in spec.rox_free]
        for name, entries in (("busy_areas", busy), ("free_areas", free)):
            mt = c + img.offsetof("execmem_cache", name)
            img.put("maple_tree", mt, ma_flags=0x300, ma_root=self._maple(sorted(entries)))

    def _leaf(self, entries: List[Tuple[int, int, int]], lo: int, hi: int) -> int:
        """A maple_leaf_64 over [lo, hi] holding entries (gaps as NULL slots)."""
        slots: List[Tuple[int, int]] = []  # (last, value)
        cur = lo
        for a, b, v in entries:
            if a > cur:
                slots.append((a - 1, 0))
            slots.append((b, v))
            cur = b + 1
        if cur <= hi:
            slots.append((hi, 0))
        assert len(slots) <= 16, "too many ranges for one leaf"
        node = self.img.alloc(256, 256)
        for i, (last, v) in enumerate(slots):
            if i < len(slots) - 1:
                self.img.w64(node + 8 + 8 * i, last)
            self.img.w64(node + 8 + 8 * 15 + 8 * i, v)
        end = len(slots) - 1
        if end < 15:
            self.img.w8(node + 248, end)  # meta.end (over slot[15])
        return node

    def _maple(self, entries: List[Tuple[int, int, int]]) -> int:
        """ma_root: one leaf, or a maple_range_64 root over two leaves."""
        if not entries:
            return 0
        if len(entries) <= 6:
            return self._leaf(entries, 0, ULONG_MAX) | 0x0C | 2
        half = len(entries) // 2
        split = entries[half][0] - 1
        left = self._leaf(entries[:half], 0, split) | 0x0C
        right = self._leaf(entries[half:], split + 1, ULONG_MAX) | 0x0C
        root = self.img.alloc(256, 256)
        self.img.w64(root + 8, split)  # pivot[0]
        self.img.w64(root + 8 + 8 * 15, left)
        self.img.w64(root + 8 + 8 * 16, right)
        self.img.w8(root + 248, 1)
        # each leaf's parent: the root, with its slot and type in the low bits (ma_set_parent())
        self.img.w64(left & ~0xFF, root | 0 << 3 | 0x2)
        self.img.w64(right & ~0xFF, root | 1 << 3 | 0x2)
        return root | 0x14 | 2


def standard(layout: str = "6.12", module_layout: str = "mem", rox: bool = False) -> Tuple[SynthKernel, ExecSpec]:
    """A small kernel with one of everything."""
    M = MODULES_VADDR
    pack = M + 0x0200000
    progs = [
        ProgSpec("alpha", bytes.fromhex("1122334455667788"), 7, 0x000, 0x140, code_off=0x20),
        ProgSpec("beta", bytes.fromhex("99aabbccddeeff00"), 9, 0x180, 0x40 * 40),
        ProgSpec("noksym", bytes.fromhex("0102030405060708"), 11, 0x4000, 0x80, ksym=False),
    ]
    spec = ExecSpec(packs={pack: progs}, orphans=[(pack, 0x2000, 0x100), (pack, 0x2100, 0x80)],
                    images=[(pack + 0x3000, pack + 0x3000 + 0x600, "bpf_trampoline_6442451234"),
                            (pack + 0x5000, pack + 0x6000, "bpf_dispatcher_xdp")],
                    dispatcher_rw=M + 0x0500000, kprobe_pages=[M + 0x0510000],
                    ftrace=[(M + 0x0520000, 0x1a8)])
    if module_layout == "mem":
        spec.modules = [
            ModuleSpec("modone", {"MOD_TEXT": (M + 0x1000000, 0x2345), "MOD_DATA": (M + 0x1010000, 0x1000),
                                  "MOD_RODATA": (M + 0x1020000, 0x800), "MOD_RO_AFTER_INIT": (M + 0x1030000, 0x100)}),
            ModuleSpec("modinit", {"MOD_TEXT": (M + 0x1100000, 0x1000), "MOD_DATA": (M + 0x1110000, 0x1000),
                                   "MOD_INIT_TEXT": (M + 0x1120000, 0x1000)}, state=1),
        ]
    else:
        spec.modules = [
            ModuleSpec("modone", {"core": (M + 0x1000000, 0x6000, 0x3000, 0x4000, 0x5000)}),
            ModuleSpec("modinit", {"core": (M + 0x1100000, 0x2000, 0x1000, 0x1000, 0x1000),
                                   "init": (M + 0x1200000, 0x3000, 0x1000, 0x2000, 0x2000)}, state=1),
        ]
    rox_areas: Tuple[int, ...] = ()
    if rox:
        cache = M + 0x2000000
        rox_areas = (cache,)
        text = cache + 0x1000
        spec.modules.append(ModuleSpec("roxmod", {"MOD_TEXT": (text, 0x1800), "MOD_DATA": (M + 0x1300000, 0x1000)}))
        spec.rox_busy = [(text, 0x2000, False), (cache + 0x3000, 0x1000, False), (cache + 0x8000, 0x1000, True),
                         (cache + 0x10000, 0x1000, False), (cache + 0x20000, 0x3000, False),
                         (cache + 0x30000, 0x1000, False), (cache + 0x40000, 0x1000, False)]
        spec.rox_free = [(cache, 0x1000), (cache + 0x4000, 0x4000), (cache + 0x41000, PACK_SIZE - 0x41000)]
        spec.kprobe_pages.append(cache + 0x3000)
    return build(layout, spec, module_layout, rox_areas), spec


def bulk(n: int, layout: str = "6.12") -> SynthKernel:
    """``n`` BPF programs, 64 per 2 MiB pack... packed densely: each
    program takes 4 chunks, so one pack holds 8192."""
    per_pack = PACK_SIZE // (4 * CHUNK)
    packs: Dict[int, List[ProgSpec]] = {}
    for i in range(n):
        pack = MODULES_VADDR + 0x400000 * (1 + i // per_pack)
        packs.setdefault(pack, []).append(
            ProgSpec(f"p{i}", i.to_bytes(8, "big"), i + 1, (i % per_pack) * 4 * CHUNK, 4 * CHUNK))
    return build(layout, ExecSpec(packs=packs), image_size=1 << 26)
