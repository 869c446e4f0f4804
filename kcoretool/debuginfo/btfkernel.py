# SPDX-License-Identifier: LGPL-2.1-or-later
"""
A kernel without a vmlinux: BTF types, kallsyms symbols
-------------------------------------------------------

:func:`load_btf_kernel` gives a :class:`drgn.Program` that has no DWARF the
three things the model and reader ask of it:

- **types** from the kernel's own BTF (:mod:`kcoretool.debuginfo.btf`, turned
  into drgn types by :mod:`kcoretool.debuginfo.btf_types`): live from
  ``/sys/kernel/btf/vmlinux``, on a vmcore from ``__start_BTF`` ..
  ``__stop_BTF`` in the kernel image's memory; modules' split BTF (live
  ``/sys/kernel/btf/<module>``, on a vmcore the copies on ``btf_modules``)
  only when a type is asked for that vmlinux does not have;
- **symbols** from kallsyms: live ``/proc/kallsyms``, on a vmcore the
  in-memory tables VMCOREINFO points at (v6.0+), both through drgn's
  loader; module symbols from each module's in-memory symbol table;
- **objects** (``prog["vmap_area_list"]``): the kallsyms address with the
  type BTF gives it (per-CPU variables and functions), else the type the
  caller's table of globals gives (:data:`kcoretool.kernel.globals.GLOBALS`)
  -- BTF describes only per-CPU variables (pahole emits no VAR for other
  globals unless built with ``global_var``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import drgn
from drgn.helpers import ValidationError

from kcoretool.debuginfo.btf import Btf, BtfError, parse_btf
from kcoretool.debuginfo.btf_types import BtfTypes
from kcoretool.debuginfo.kallsyms import kallsyms_locations, load_kallsyms, use_kallsyms
from kcoretool.debuginfo.plan import BTF_SYSFS
from kcoretool.errors import DebugInfoError, KernelDataError

__all__ = ("PLUGIN_FINDER", "BtfKernel", "load_btf_kernel", "plugin_btf", "register_plugin_finders",
           "set_kernel_address_range")

@dataclasses.dataclass
class BtfKernel:
    """What :func:`load_btf_kernel` set up, for ``info`` and tests."""

    btf_source: str
    btf_bytes: int
    btf_types: int
    kallsyms_source: str
    #: module BTF blobs searched (loaded on the first type vmlinux lacks)
    modules_btf: List[str] = dataclasses.field(default_factory=list)
    #: modules whose BTF could not be used, with why
    modules_btf_skipped: List[str] = dataclasses.field(default_factory=list)
    #: the type finder, object finder and kallsyms index it built
    finders: Tuple[Any, Any, Any] = dataclasses.field(default=(None, None, None), repr=False, compare=False)


def _first_address(index: drgn.SymbolIndex, prog: drgn.Program, name: str) -> Optional[int]:
    syms = index(prog, name, None, True)
    return syms[0].address if syms else None


def set_kernel_address_range(prog: drgn.Program, index: drgn.SymbolIndex) -> bool:
    """
    Give drgn's main module (the kernel) its address range, ``_text`` ..
    ``_end`` from kallsyms, when no vmlinux did: drgn then finds the module
    for a kernel PC and unwinds it with the kernel's own ORC tables, which it
    reads from memory through ``__start_orc_unwind_ip`` ..
    ``__stop_orc_unwind`` (and ``__start_orc_header`` since b9f174c811e3,
    v6.4) -- symbols kallsyms has (libdrgn/orc_info.c,
    ``drgn_read_vmlinux_orc()``). Without a range every kernel frame is
    unknown to drgn and its stack traces stop or wander. True if set.
    """
    if not hasattr(prog, "main_module"):
        return False  # drgn without the module API
    try:
        main = prog.main_module("kernel", create=True)
        if main.address_ranges:
            return False  # from a vmlinux, or set before
        text, end = _first_address(index, prog, "_text"), _first_address(index, prog, "_end")
        if text is None or end is None or not 0 < end - text <= 1 << 30:
            return False
        main.address_range = (text, end)
    except (ValueError, LookupError):
        return False  # another module claims the range: leave drgn's state alone
    return True


def read_vmlinux_btf(prog: drgn.Program, index: drgn.SymbolIndex, live: bool) -> Tuple[bytes, str]:
    """The vmlinux BTF blob and where it came from."""
    if live and os.path.exists(BTF_SYSFS):
        with open(BTF_SYSFS, "rb") as f:
            return f.read(), BTF_SYSFS
    start = _first_address(index, prog, "__start_BTF")
    stop = _first_address(index, prog, "__stop_BTF")
    if start is None or stop is None:
        raise DebugInfoError("no vmlinux debug info, and kallsyms has no __start_BTF/__stop_BTF "
                             "(kernel built without CONFIG_DEBUG_INFO_BTF); pass vmlinux=")
    if not 0 < stop - start <= 256 << 20:
        raise DebugInfoError(f"__start_BTF {start:#x} .. __stop_BTF {stop:#x} is not a plausible BTF "
                             "section; pass vmlinux=")
    try:
        return prog.read(start, stop - start), f"kernel memory at {start:#x}"
    except drgn.FaultError as e:
        raise DebugInfoError(f"the kernel's BTF at {start:#x} is not in this core ({e}); "
                             "the dump may have excluded it; pass vmlinux=") from None


class _ObjectFinder:
    """``prog[name]`` for a kernel without DWARF: kallsyms address + BTF/table type."""

    def __init__(self, types: BtfTypes, index: drgn.SymbolIndex, globals_: Mapping[str, str]) -> None:
        self.types = types
        self.index = index
        self.globals = globals_
        self._cache: Dict[Tuple[str, int], Optional[drgn.Object]] = {}

    def __call__(self, prog: drgn.Program, name: str, flags: drgn.FindObjectFlags,
                 filename: Optional[str]) -> Optional[drgn.Object]:
        key = (name, int(flags.value))
        if key in self._cache:
            return self._cache[key]
        obj = self._find(prog, name, flags)
        self._cache[key] = obj
        return obj

    def _find(self, prog: drgn.Program, name: str, flags: drgn.FindObjectFlags) -> Optional[drgn.Object]:
        if flags & drgn.FindObjectFlags.CONSTANT:
            found = self.types.enumerator(name, modules=flags == drgn.FindObjectFlags.CONSTANT)
            if found is not None:
                t, value = found
                return drgn.Object(prog, t, value)
        if not flags & (drgn.FindObjectFlags.VARIABLE | drgn.FindObjectFlags.FUNCTION):
            return None
        syms = self.index(prog, name, None, False)
        if not syms:
            return None
        if flags & drgn.FindObjectFlags.FUNCTION:
            ft = self.types.function_type(name)
            if ft is not None:
                return drgn.Object(prog, ft, address=syms[0].address)
        if flags & drgn.FindObjectFlags.VARIABLE:
            t = self.types.variable_type(name)
            if t is None and name in self.globals:
                t = self._table_type(prog, self.globals[name], syms)
            if t is not None:
                return drgn.Object(prog, t, address=_pick(syms, t).address)
        if syms[0].kind == drgn.SymbolKind.FUNC and flags & drgn.FindObjectFlags.FUNCTION:
            # A function BTF left out (pahole drops inconsistent prototypes):
            # it exists, its prototype is unknown.
            return drgn.Object(prog, prog.function_type(prog.void_type(), (), True), address=syms[0].address)
        # A variable of unknown type is not found (KeyError), as drgn's
        # helpers expect of an absent one; GLOBALS must list what is read.
        return None

    def _table_type(self, prog: drgn.Program, spec: str, syms: List[drgn.Symbol]) -> Optional[drgn.Type]:
        """The type a GLOBALS entry names; array lengths the kernel's
        configuration decides are written as rules (:data:`GLOBALS`' doc)."""
        if spec.startswith("struct {"):
            return _anonymous_struct(prog, spec)
        m = _DIMS.search(spec)
        if m is None or all(d.isdigit() or not d for d in _DIM.findall(m.group(0))):
            return prog.type(spec)
        elem = prog.type(spec[:m.start()].strip())
        dims: List[Optional[int]] = []
        rule = None
        for d in _DIM.findall(m.group(0)):
            if d.isdigit():
                dims.append(int(d))
                continue
            rule = d
            dims.append(None)
        assert rule is not None
        if rule in ("extent", "extent nonzero"):
            # the symbol's extent in kallsyms (up to the next symbol, which
            # drgn caps below 64 KiB), in whole elements
            if len(syms) != 1 or not syms[0].size:
                return None
            other = drgn.sizeof(elem)
            for d in dims:
                other *= d or 1
            n = syms[0].size // other
            if rule == "extent nonzero":
                # alignment padding after the array reads as zero elements
                try:
                    data = prog.read(syms[0].address, n * other)
                except drgn.FaultError:
                    return None
                while n and not any(data[(n - 1) * other:n * other]):
                    n -= 1
        elif rule.startswith("sizeof("):
            m2 = re.fullmatch(r"sizeof\((.+)\) / (\d+)", rule)
            if m2 is None:
                return None
            n = drgn.sizeof(prog.type(m2.group(1))) // int(m2.group(2))
        elif rule.startswith("len "):
            other_obj = self(prog, rule[4:], drgn.FindObjectFlags.VARIABLE, None)
            if other_obj is None:
                return None
            n = len(other_obj)
        else:
            found = self.types.enumerator(rule)  # NR_SOFTIRQS, NR_VM_NODE_STAT_ITEMS, ...
            if found is None:
                return None
            n = found[1]
        t = elem
        for d in reversed(dims):
            t = prog.array_type(t, n if d is None else d)
        return t


def _anonymous_struct(prog: drgn.Program, spec: str) -> drgn.Type:
    """``struct { T a; U b; }`` (a static variable's unnamed type), each
    member at its natural alignment."""
    members = []
    offset = 0
    for decl in spec[len("struct {"):].rstrip("} ").split(";"):
        if not decl.strip():
            continue
        tname, _, mname = decl.strip().rpartition(" ")
        t = prog.type(tname)
        align = drgn.alignof(t)
        offset = -(-offset // align) * align
        members.append(drgn.TypeMember(t, mname, offset * 8))
        offset += drgn.sizeof(t)
    align = max(drgn.alignof(m.type) for m in members)
    return prog.struct_type(None, -(-offset // align) * align, members)


#: the array dimensions at the end of a GLOBALS entry, and one of them
_DIMS = re.compile(r"(\[[^\]]*\])+$")
_DIM = re.compile(r"\[([^\]]*)\]")


def _pick(syms: List[drgn.Symbol], t: drgn.Type) -> drgn.Symbol:
    """Static names repeat in kallsyms (``single``): the one whose extent fits the type."""
    if len(syms) == 1:
        return syms[0]
    try:
        size = drgn.sizeof(t)
    except TypeError:
        return syms[0]
    fits = [s for s in syms if s.kind != drgn.SymbolKind.FUNC and s.size >= size]
    return min(fits, key=lambda s: s.size) if fits else syms[0]


#: bound on modules read (a corrupt btf_modules list must not loop)
MAX_MODULES = 10000


def _sysfs_module_btf() -> Iterator[Tuple[str, bytes]]:
    """Live: /sys/kernel/btf/<module>, beside vmlinux."""
    root = os.path.dirname(BTF_SYSFS)
    for name in sorted(os.listdir(root))[:MAX_MODULES]:
        if name != "vmlinux":
            with open(os.path.join(root, name), "rb") as f:
                yield name, f.read()


def _memory_module_btf(prog: drgn.Program) -> Iterator[Tuple[str, bytes]]:
    """vmcore: the blobs kernel/bpf/btf.c keeps for loaded modules (the
    module's own .BTF is freed after init -- do_init_module() clears
    mod->btf_data since commit 607c543f939d (v5.11) -- and
    btf_module_notify() keeps a parsed copy in struct btf), walked as a
    bounded, validated list."""
    from drgn.helpers.linux.list import validate_list_for_each_entry

    head = prog["btf_modules"]
    for i, bm in enumerate(validate_list_for_each_entry("struct btf_module", head.address_of_(), "list")):
        if i >= MAX_MODULES:
            break
        btf = bm.btf
        name = btf.name.string_().decode(errors="replace")
        size = int(btf.data_size)
        if not 0 < size <= 64 << 20:
            raise DebugInfoError(f"module {name}: BTF size {size} is not plausible")
        yield name, prog.read(int(btf.data), size)


def _module_btf_loader(prog: drgn.Program, base: Btf, live: bool,
                       loaded: BtfKernel) -> Callable[[], List[Btf]]:
    def load() -> List[Btf]:
        out: List[Btf] = []
        source = _sysfs_module_btf() if live and os.path.isdir(os.path.dirname(BTF_SYSFS)) \
            else _memory_module_btf(prog)
        try:
            for name, blob in source:
                try:
                    out.append(parse_btf(blob, base=base, name=name))
                    loaded.modules_btf.append(name)
                except BtfError as e:
                    loaded.modules_btf_skipped.append(str(e))
        except (KeyError, LookupError, OSError, ValueError, drgn.FaultError, ValidationError,
                DebugInfoError) as e:
            # Module types are a bonus: vmalloc bookkeeping is all in vmlinux.
            loaded.modules_btf_skipped.append(f"module BTF list: {e}")
        return out

    return load


def load_btf_kernel(prog: drgn.Program, live: bool, globals_: Mapping[str, str], *,
                    register: bool = True) -> BtfKernel:
    """Register kallsyms symbols, BTF types and the object finder on ``prog``
    (ahead of drgn's own finders, which have nothing without DWARF);
    ``globals_`` gives the type of each global BTF does not describe.
    ``register=False`` only builds them (:attr:`BtfKernel.finders`)."""
    if register:
        index = use_kallsyms(prog)
        if index is None:
            damage = prog.cache.get("kcoretool_kallsyms_damage")
            if damage:
                raise KernelDataError(f"the kernel's kallsyms tables are unreadable ({damage}): the core is "
                                      "damaged or lacks those pages; vmlinux= with DWARF does without them")
            if live:
                how = "/proc/kallsyms"
            else:
                try:
                    kallsyms_locations(prog)
                    how = "the kernel's kallsyms tables"
                except LookupError as e:
                    how = f"the kernel's kallsyms tables ({e})"
            err = DebugInfoError(f"no vmlinux debug info and no kallsyms from {how}; pass vmlinux=")
            err.reason = f"no kallsyms from {how}"  # type: ignore[attr-defined]
            raise err
        ks_source = prog.cache["kcoretool_kallsyms_source"]
    else:
        try:
            index, ks_source = load_kallsyms(prog)
        except (LookupError, ValueError, OSError, drgn.FaultError) as e:
            raise DebugInfoError(f"no kallsyms for this kernel ({e})") from None
    blob, btf_source = read_vmlinux_btf(prog, index, live)
    btf = parse_btf(blob, name="vmlinux")
    loaded = BtfKernel(btf_source=btf_source, btf_bytes=len(blob), btf_types=len(btf), kallsyms_source=ks_source)
    types = BtfTypes(prog, [btf], more=_module_btf_loader(prog, btf, live, loaded))
    objects = _ObjectFinder(types, index, globals_)
    loaded.finders = (types, objects, index)
    if register:
        types.register(prog)
        prog.register_object_finder("kcoretool-btf", objects, enable_index=-1)
        set_kernel_address_range(prog, index)
    return loaded


# -- the drgn plugin's finders (kcoretool.drgn_plugin) ------------------------------

#: the kernel half of the x86-64 address space: every kernel symbol's address is in it
KERNEL_HALF = 0xffff800000000000

#: names of the plugin's finders (type, object and symbol finder alike)
PLUGIN_FINDER = "kcoretool-plugin"


def plugin_btf(prog: drgn.Program) -> Optional[BtfKernel]:
    """What the kcoretool drgn plugin loaded into ``prog``, if it did."""
    lazy = prog.cache.get("kcoretool_plugin")
    return lazy.loaded if isinstance(lazy, _PluginFinders) else None


def _main_has_dwarf(prog: drgn.Program) -> bool:
    try:
        return bool(prog.main_module().debug_file_status == drgn.ModuleFileStatus.HAVE)
    except LookupError:
        return False


class _PluginFinders:
    """A type, object and symbol finder behind every other finder of the
    program, that loads the kernel's BTF and kallsyms on the first lookup
    and answers only while the kernel itself (vmlinux) has no DWARF: real
    debug info is never overridden, even when it is loaded later."""

    def __init__(self, live: bool, globals_: Mapping[str, str]) -> None:
        self.live = live
        self.globals = globals_
        self.loaded: Optional[BtfKernel] = None
        #: why BTF could not be loaded (then the finders stay silent)
        self.failed: Optional[str] = None
        self._loading = False
        self._modules: Optional[Callable[..., List[drgn.Symbol]]] = None

    def _active(self, prog: drgn.Program) -> bool:
        if self._loading or self.failed is not None or _main_has_dwarf(prog):
            return False
        if "kcoretool_debuginfo" in prog.cache and self.loaded is None:
            return False  # kcoretool adopted it with types of its own
        if self.loaded is None:
            import logging

            self._loading = True
            try:
                self.loaded = load_btf_kernel(prog, self.live, self.globals, register=False)
            except (DebugInfoError, BtfError, LookupError, ValueError, OSError, drgn.FaultError) as e:
                self.failed = str(e)
                logging.getLogger("kcoretool").warning("kcoretool plugin: no BTF for this kernel: %s", e)
                return False
            finally:
                self._loading = False
            logging.getLogger("kcoretool").info(
                "kcoretool plugin: no DWARF for the kernel; types from its BTF (%s), symbols from kallsyms (%s)",
                self.loaded.btf_source, self.loaded.kallsyms_source)
            set_kernel_address_range(prog, self.loaded.finders[2])
        return True

    def find_debug_info(self, modules: List[Any]) -> None:
        """drgn's debug info finder hook, after drgn's own: when the kernel
        is left without a file, load kallsyms and BTF now, which gives the
        kernel its address range (:func:`set_kernel_address_range`) before
        anything is unwound -- the crashed thread's stack needs no lookup
        that would load them."""
        for module in modules:
            if isinstance(module, drgn.MainModule) and module.wants_debug_file():
                self._active(module.prog)

    def find_type(self, prog: drgn.Program, kinds: drgn.TypeKindSet, name: str,
                  filename: Optional[str]) -> Optional[drgn.Type]:
        if not self._active(prog):
            return None
        assert self.loaded is not None
        return self.loaded.finders[0]._find(prog, kinds, name, filename)

    def find_object(self, prog: drgn.Program, name: str, flags: drgn.FindObjectFlags,
                    filename: Optional[str]) -> Optional[drgn.Object]:
        if not self._active(prog):
            return None
        assert self.loaded is not None
        return self.loaded.finders[1](prog, name, flags, filename)

    def find_symbols(self, prog: drgn.Program, name: Optional[str], address: Optional[int],
                     one: bool) -> List[drgn.Symbol]:
        if not self._active(prog):
            return []
        assert self.loaded is not None
        if address is not None and address < KERNEL_HALF:
            # kallsyms' per-CPU symbols are offsets from 0 (__per_cpu_start
            # is 0): no pointer is one of them, so NULL prints as 0x0
            return []
        if address is not None:
            # Aliases share an address (__do_sys_pause, __x64_sys_pause);
            # drgn's kallsyms index gives all but the last a size of 0. Name
            # it as %pS does, the first in kallsyms' order (get_symbol_pos()),
            # as the kernel's own stack dumps and DWARF name it.
            found = list(self.loaded.finders[2](prog, None, address, one))
            if found:
                from kcoretool.debuginfo.kallsyms import kallsyms_table

                table = kallsyms_table(prog)
                pS = table.lookup(address) if table is not None else None
                s0 = found[0]
                if pS is not None and pS[0] != s0.name and pS[1] == s0.address:
                    found[0] = drgn.Symbol(pS[0], s0.address, s0.size, s0.binding, s0.kind)
        else:
            found = list(self.loaded.finders[2](prog, name, address, one))
        if found:
            return found
        if self._modules is None:
            try:
                from drgn.helpers.linux.kallsyms import load_module_kallsyms

                self._modules = load_module_kallsyms(prog)
            except Exception:  # best effort: modules' symbols are a bonus
                self._modules = lambda *args: []
        return list(self._modules(prog, name, address, one))


def register_plugin_finders(prog: drgn.Program, globals_: Mapping[str, str]) -> None:
    """The kcoretool drgn plugin: BTF types, kallsyms symbols and typed
    globals for a kernel drgn finds no DWARF for, registered after drgn's
    own finders and loaded on first use."""
    if "kcoretool_plugin" in prog.cache:
        return
    lazy = _PluginFinders(bool(prog.flags & drgn.ProgramFlags.IS_LIVE), globals_)
    prog.cache["kcoretool_plugin"] = lazy
    prog.register_type_finder(PLUGIN_FINDER, lazy.find_type, enable_index=-1)
    prog.register_object_finder(PLUGIN_FINDER, lazy.find_object, enable_index=-1)
    prog.register_symbol_finder(PLUGIN_FINDER, lazy.find_symbols, enable_index=-1)
    if hasattr(prog, "register_debug_info_finder"):  # drgn's module API
        prog.register_debug_info_finder(PLUGIN_FINDER, lazy.find_debug_info, enable_index=-1)
