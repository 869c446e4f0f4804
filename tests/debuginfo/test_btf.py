"""The BTF parser: exact decoding of every kind, split BTF, exact errors on
damaged blobs, hypothesis mutations, and the real kernels' .BTF sections."""

from __future__ import annotations

import hashlib
import os
import struct
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcoretool.debuginfo.btf import (
    ENUM,
    FUNC,
    INT,
    BtfArray,
    BtfDatasec,
    BtfDeclTag,
    BtfEnum,
    BtfEnum64,
    BtfError,
    BtfFloat,
    BtfFunc,
    BtfFuncProto,
    BtfFwd,
    BtfInt,
    BtfMember,
    BtfParam,
    BtfPtr,
    BtfQual,
    BtfStruct,
    BtfTypedef,
    BtfTypeTag,
    BtfVar,
    BtfVarSecinfo,
    BtfVoid,
    parse_btf,
)
from tests.btfbuild import BtfBuilder


def every_kind() -> BtfBuilder:
    """One of each kind, the way a kernel blob uses them."""
    b = BtfBuilder()
    b.int("unsigned int", 4)                                        # 1
    b.int("int", 4, signed=True)                                    # 2
    b.int("char", 1, signed=True, char=True)                        # 3
    b.int("_Bool", 1, bool_=True)                                   # 4
    b.ptr(3)                                                        # 5 char *
    b.array(3, 1, 16)                                               # 6 char[16]
    # struct with bitfields: unsigned int a:3, b:5; char name[16]; int *p
    b.struct("vmap_thing", 32, [("a", 1, 0, 3), ("b", 1, 3, 5), ("name", 6, 32), ("p", 9, 192)])  # 7
    b.union(None, 4, [("i", 2, 0), ("u", 1, 0)])                    # 8
    b.ptr(2)                                                        # 9 int *
    b.enum("vmap_kind", 4, [("VK_NONE", 0), ("VK_NEG", -1)], signed=True)  # 10
    b.enum64("big", 8, [("BIG_LOW", 1), ("BIG_TOP", 1 << 63)])     # 11
    b.enum64("sbig", 8, [("SBIG_NEG", -2)], signed=True)            # 12
    b.fwd("vm_struct")                                              # 13
    b.fwd("some_union", union=True)                                 # 14
    b.typedef("u32", 1)                                             # 15
    b.volatile(15)                                                  # 16
    b.const(16)                                                     # 17
    b.restrict(5)                                                   # 18
    b.func_proto(2, [("addr", 1), ("name", 5)], variadic=True)      # 19
    b.func("vread_iter", 19, linkage=1)                             # 20
    b.var("vmap_count", 2, linkage=1)                               # 21
    b.datasec(".data..percpu", 64, [(21, 8, 4)])                    # 22
    b.float("double", 8)                                            # 23
    b.decl_tag("user", 7, 2)                                        # 24
    b.type_tag("percpu", 9)                                         # 25
    b.decl_tag("noinline", 20)                                      # 26
    return b


def test_every_kind_decodes_exactly():
    btf = parse_btf(every_kind().build(), name="test")
    assert len(btf) == 26 and list(btf) == list(range(1, 27)) and repr(btf) == "<Btf test: ids 1..26>"
    assert btf.type(0) == BtfVoid()
    assert btf.type(1) == BtfInt(1, "unsigned int", 4, False, False, False, 0, 32)
    assert btf.type(2) == BtfInt(2, "int", 4, True, False, False, 0, 32)
    assert btf.type(3) == BtfInt(3, "char", 1, True, True, False, 0, 8)
    assert btf.type(4) == BtfInt(4, "_Bool", 1, False, False, True, 0, 8)
    assert btf.type(5) == BtfPtr(5, 3)
    assert btf.type(6) == BtfArray(6, 3, 1, 16)
    assert btf.type(7) == BtfStruct(7, "vmap_thing", 32, (
        BtfMember("a", 1, 0, 3), BtfMember("b", 1, 3, 5), BtfMember("name", 6, 32, 0), BtfMember("p", 9, 192, 0)))
    assert btf.type(8) == BtfStruct(8, None, 4, (BtfMember("i", 2, 0, 0), BtfMember("u", 1, 0, 0)), "UNION")
    assert btf.type(10) == BtfEnum(10, "vmap_kind", 4, True, (("VK_NONE", 0), ("VK_NEG", -1)))
    assert btf.type(11) == BtfEnum64(11, "big", 8, False, (("BIG_LOW", 1), ("BIG_TOP", 1 << 63)))
    assert btf.type(12) == BtfEnum64(12, "sbig", 8, True, (("SBIG_NEG", -2),))
    assert btf.type(13) == BtfFwd(13, "vm_struct", False)
    assert btf.type(14) == BtfFwd(14, "some_union", True)
    assert btf.type(15) == BtfTypedef(15, "u32", 1)
    assert btf.type(16) == BtfQual(16, 15, "VOLATILE")
    assert btf.type(17) == BtfQual(17, 16, "CONST")
    assert btf.type(18) == BtfQual(18, 5, "RESTRICT")
    assert btf.type(19) == BtfFuncProto(19, 2, (BtfParam("addr", 1), BtfParam("name", 5)), True)
    assert btf.type(20) == BtfFunc(20, "vread_iter", 19, 1)
    assert btf.type(21) == BtfVar(21, "vmap_count", 2, 1)
    assert btf.type(22) == BtfDatasec(22, ".data..percpu", 64, (BtfVarSecinfo(21, 8, 4),))
    assert btf.type(23) == BtfFloat(23, "double", 8)
    assert btf.type(24) == BtfDeclTag(24, "user", 7, 2)
    assert btf.type(25) == BtfTypeTag(25, "percpu", 9)
    assert btf.type(26) == BtfDeclTag(26, "noinline", 20, -1)


def test_lookups_resolve_and_sizes():
    btf = parse_btf(every_kind().build(), name="test")
    assert btf.ids_by_name("vmap_thing") == [7]
    assert btf.ids_by_name("nope") == []
    assert btf.find("vm_struct", "FWD") == [BtfFwd(13, "vm_struct", False)]
    assert btf.find("vm_struct", "STRUCT") == []
    assert btf.var("vmap_count") == BtfVar(21, "vmap_count", 2, 1)
    assert btf.func("vread_iter") == BtfFunc(20, "vread_iter", 19, 1)
    assert btf.var("vread_iter") is None and btf.func("vmap_count") is None
    assert btf.name_of(7) == "vmap_thing" and btf.name_of(5) is None
    assert btf.kind_of(0) == 0 and btf.kind_of(20) == FUNC and btf.kind_of(10) == ENUM
    # const volatile u32 -> unsigned int; type tags are transparent too.
    assert btf.resolve(17) == 1 and btf.resolve(25) == 9 and btf.resolve(7) == 7
    sizes = {i: btf.size_of(i) for i in (1, 3, 5, 6, 7, 8, 10, 11, 17, 22, 23, 25)}
    assert sizes == {1: 4, 3: 1, 5: 8, 6: 16, 7: 32, 8: 4, 10: 4, 11: 8, 17: 4, 22: 64, 23: 8, 25: 8}
    assert list(btf.ids_of_kind("ENUM", "ENUM64")) == [10, 11, 12]
    with pytest.raises(BtfError, match=r"^test BTF: type 20 \(FUNC\) has no size$"):
        btf.size_of(20)


def test_split_btf_continues_the_base():
    base_b = every_kind()
    mod_b = BtfBuilder(base=base_b)
    s = mod_b.struct("kcoretool_test_area", 16, [("addr", 9, 0), ("name", 5, 64)])    # 27, base types
    mod_b.ptr(s)                                                                       # 28
    mod_b.var("vmap_count", 28)                                                        # 29 (shadows by name)
    base = parse_btf(base_b.build(), name="vmlinux")
    mod = parse_btf(mod_b.build(), base=base, name="kcoretool_test")
    assert (mod.start_id, mod.end_id, len(mod)) == (27, 30, 3)
    assert repr(mod) == "<Btf kcoretool_test: ids 27..29>"
    assert mod.type(27) == BtfStruct(27, "kcoretool_test_area", 16,
                                     (BtfMember("addr", 9, 0, 0), BtfMember("name", 5, 64, 0)))
    assert mod.type(7) is base.type(7)          # base ids go to the base blob
    assert mod.ids_by_name("vmap_count") == [21, 29]
    assert mod.size_of(28) == 8 and mod.resolve(17) == 1
    assert list(mod.ids_of_kind("PTR"))[-1] == 28
    # The module's strings continue the base's; a name only the base holds
    # is not written twice.
    assert mod_b.s("int") == base_b.s("int") and mod.string(mod_b.s("addr")) == "addr"
    with pytest.raises(BtfError, match=r"^vmlinux BTF: type id 27 is beyond the last type 26$"):
        base.type(27)


def _bad(build) -> BtfBuilder:
    b = BtfBuilder()
    b.int("int", 4, signed=True)   # 1
    build(b)
    return b


def _header(**kw) -> bytes:
    """A valid empty blob's header with fields replaced."""
    f = dict(magic=0xEB9F, version=1, flags=0, hdr_len=24, type_off=0, type_len=0, str_off=0, str_len=1)
    f.update(kw)
    return struct.pack("<HBBIIIII", *f.values()) + b"\0"


@pytest.mark.parametrize("data, message", [
    (b"\x9f\xeb\x01", "x BTF: 3 bytes, shorter than the 24-byte header"),
    (_header(magic=0x9FEB), "x BTF: big-endian BTF is not supported"),
    (_header(magic=0x1234), "x BTF: bad magic 0x1234 (expected 0xeb9f); not BTF"),
    (_header(version=2), "x BTF: version 2 is not supported (only 1)"),
    (_header(hdr_len=16), "x BTF: header length 16 is outside 24..25"),
    (_header(hdr_len=4096), "x BTF: header length 4096 is outside 24..25"),
    (_header(str_len=9), "x BTF: string section [0x0, 0x9) is outside the 0x1 bytes after the header"),
    (_header(type_off=2, type_len=0, str_off=0, str_len=0) + b"\0" * 2,
     "x BTF: type section offset 0x2 is not 4-byte aligned"),
    (_header(type_len=1, str_len=1),
     "x BTF: the type and string sections overlap"),
    (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 2) + b"a\0",
     "x BTF: the string section does not start with an empty string"),
    (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 2) + b"\0a",
     "x BTF: the string section does not end with a NUL"),
])
def test_header_errors(data, message):
    with pytest.raises(BtfError) as e:
        parse_btf(data, name="x")
    assert str(e.value) == message


def _types_blob(types: bytes, strings: bytes = b"\0int\0") -> bytes:
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


@pytest.mark.parametrize("make, message", [
    (lambda: _types_blob(b"\0" * 8),
     "x BTF: type 1 at offset 0x0: truncated (12-byte header past the end of the type section, 0x8 bytes)"),
    (lambda: _types_blob(struct.pack("<III", 0, 25 << 24, 0)),
     "x BTF: type 1 at offset 0x0: unknown kind 25"),
    (lambda: _types_blob(struct.pack("<III", 0, 0, 0)),
     "x BTF: type 1 at offset 0x0: unknown kind 0"),
    (lambda: _types_blob(struct.pack("<III", 1, INT << 24, 4)),
     "x BTF: type 1 (INT) at offset 0x0: truncated (needs 16 bytes, the type section ends at 0xc)"),
    (lambda: _types_blob(struct.pack("<III", 0, (4 << 24) | 1000, 8)),
     "x BTF: type 1 (STRUCT) at offset 0x0: truncated (needs 12012 bytes, the type section ends at 0xc)"),
    (lambda: _types_blob(struct.pack("<IIII", 99, INT << 24, 4, 32)),
     "x BTF: type 1 (INT) at offset 0x0: string offset 0x63 is beyond the string section (0x5 bytes)"),
])
def test_index_errors(make, message):
    with pytest.raises(BtfError) as e:
        parse_btf(make(), name="x")
    assert str(e.value) == message


@pytest.mark.parametrize("build, tid, message", [
    (lambda b: b.ptr(7), 2, "x BTF: type 2 (PTR) at offset 0x10: type id 7 is beyond the last type 2"),
    (lambda b: b.struct("s", 4, [("m", 9, 0)]), 2,
     "x BTF: type 2 (STRUCT) at offset 0x10: member 0 refers to type 9, beyond the last type 2"),
    (lambda b: b.array(1, 5, 3), 2,
     "x BTF: type 2 (ARRAY) at offset 0x10: the index refers to type 5, beyond the last type 2"),
    (lambda b: b.func_proto(1, [("a", 1), ("b", 40)]), 2,
     "x BTF: type 2 (FUNC_PROTO) at offset 0x10: parameter 1 refers to type 40, beyond the last type 2"),
    (lambda b: b.datasec(".bss", 8, [(3, 0, 4)]), 2,
     "x BTF: type 2 (DATASEC) at offset 0x10: variable 0 refers to type 3, beyond the last type 2"),
    (lambda b: b.int("wide", 4, bits=40), 2,
     "x BTF: type 2 (INT) at offset 0x10: 40 bits at bit 0 do not fit 4 bytes"),
    (lambda b: b.int("huge", 0x1000004), 2,
     "x BTF: type 2 (INT) at offset 0x10: integer size 16777220 is not 1, 2, 4, 8 or 16"),
    (lambda b: b.enum("e", 3, [("E0", 0)]), 2,
     "x BTF: type 2 (ENUM) at offset 0x10: enum size 3 is not 1, 2, 4 or 8"),
    (lambda b: b.func("f", 1), 2,
     "x BTF: type 2 (FUNC) at offset 0x10: refers to type 1, which is not a FUNC_PROTO"),
    (lambda b: b.float("half", 3), 2,
     "x BTF: type 2 (FLOAT) at offset 0x10: float size 3 is not 2, 4, 8, 12 or 16"),
    (lambda b: b.raw(0, ENUM, 1, 4, struct.pack("<II", 500, 0)), 2,
     "x BTF: type 2 (ENUM) at offset 0x10: string offset 0x1f4 is beyond the string section (0x5 bytes)"),
])
def test_decode_errors(build, tid, message):
    btf = parse_btf(_bad(build).build(), name="x")     # the index pass accepts it ...
    with pytest.raises(BtfError) as e:                 # ... decoding the type says what is wrong
        btf.type(tid)
    assert str(e.value) == message


def test_loops_are_bounded():
    b = BtfBuilder()
    b.raw(b.s("a"), 8, 0, 2)          # 1 typedef a -> 2
    b.raw(b.s("b"), 8, 0, 1)          # 2 typedef b -> 1
    b.array(3, 3, 2)                  # 3 an array of itself
    btf = parse_btf(b.build(), name="loop")
    with pytest.raises(BtfError) as e:
        btf.resolve(1)
    assert str(e.value) == "loop BTF: type 1: more than 64 typedefs/qualifiers in a row (a loop?)"
    with pytest.raises(BtfError) as e:
        btf.size_of(3)
    assert str(e.value) == "loop BTF: type 3: arrays nested more than 64 deep (a loop?)"


def test_split_btf_string_below_base_needs_a_base():
    b = every_kind()
    blob = b.build()
    base = parse_btf(blob, name="vmlinux")
    mod = BtfBuilder(base=b)
    mod.raw(5, INT, 0, 4, struct.pack("<I", 32))      # name offset inside the base's strings
    assert parse_btf(mod.build(), base=base, name="m").type(27).name == base.string(5)
    # Without the base, the same split blob's offsets are nonsense: one line.
    with pytest.raises(BtfError) as e:
        parse_btf(mod.build(), name="m")
    assert str(e.value) == "m BTF: type 1 (INT) at offset 0x0: string offset 0x5 is beyond the string section (0x0 bytes)"


# ---------------------------------------------------------------- hostile blobs

SEED = every_kind().build()


def _mutated(edits) -> bytes:
    data = bytearray(SEED)
    for pos, val in edits:
        data[pos] = val
    return bytes(data)


def _exercise(data: bytes) -> None:
    try:
        btf = parse_btf(data, name="fuzz")
        for tid in range(btf.end_id + 2):
            for call in (btf.type, btf.resolve, btf.size_of, btf.kind_of, btf.name_of):
                try:
                    call(tid)
                except BtfError:
                    pass
        for name in ("int", "vmap_thing", "vmap_count"):
            btf.find(name)
        list(btf.ids_of_kind("STRUCT", "UNION", "ENUM"))
    except BtfError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_blobs_only_raise_btferror(edits):
    _exercise(_mutated(edits))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SEED)))
def test_truncated_blobs_only_raise_btferror(n):
    _exercise(SEED[:n])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_after_a_good_header_only_raise_btferror(body):
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body) // 2, len(body) // 2, len(body) - len(body) // 2)
    _exercise(header + body)


# ---------------------------------------------------------------- real kernels

def _btf_section(path: str) -> bytes:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".BTF")
        assert sec is not None, f"{path} has no .BTF"
        return sec.data()


def test_real_vmlinux_btf(lab):
    """The -dbg vmlinux's .BTF (the bytes /sys/kernel/btf/vmlinux serves)."""
    path = str(lab.vmlinux)
    data = _btf_section(path)
    rc, out, err = lab.run([sys.executable, "-c", "import hashlib; print(hashlib.sha256("
                            "open('/sys/kernel/btf/vmlinux', 'rb').read()).hexdigest())"])
    assert rc == 0, err
    assert out.strip() == hashlib.sha256(data).hexdigest()
    btf = parse_btf(data, name=os.path.basename(path))
    assert len(btf) > 50000
    va = btf.find("vmap_area", "STRUCT")
    assert len(va) == 1
    members = [m.name for m in va[0].members]
    assert members[:2] == ["va_start", "va_end"] and "rb_node" in members and "list" in members
    assert btf.size_of(va[0].id) == va[0].size
    vms = btf.find("vm_struct", "STRUCT")[0]
    # 7.x: "next" shares an anonymous union with an llist_node
    assert [m.name for m in vms.members][1:3] == ["addr", "size"]
    # vmap_block: the per-CPU block allocator kcoretool reads.
    vb = btf.find("vmap_block", "STRUCT")[0]
    assert {"free", "dirty", "dirty_min", "dirty_max", "va"} <= {m.name for m in vb.members}
    assert btf.func("vread_iter" if btf.func("vread_iter") else "vread") is not None
    # Every type decodes, and every named sized type has a size.
    for tid in btf:
        t = btf.type(tid)
        if t.kind in ("STRUCT", "UNION", "INT", "ENUM", "ENUM64", "TYPEDEF") and t.name:
            try:
                btf.size_of(tid)
            except BtfError as e:       # a typedef of a function type has none
                assert "has no size" in str(e)


# ---------------------------------------------------------------- into drgn

def _drgn_types(data: bytes) -> None:
    """Convert every type of a (possibly damaged) blob to a drgn type,
    members and parameters included, as the model's first use would."""
    import drgn

    from kcoretool.debuginfo.btf_types import BtfTypes
    try:
        btf = parse_btf(data, name="fuzz")
    except BtfError:
        return
    prog = drgn.Program(drgn.host_platform)
    types = BtfTypes(prog, [btf])
    for tid in btf:
        try:
            t = types.type_by_id(btf, tid)
            if t.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) and t.is_complete():
                for m in t.members:
                    m.type
            elif t.kind == drgn.TypeKind.FUNCTION:
                for p in t.parameters:
                    p.type
        except (BtfError, drgn.MissingDebugInfoError):
            pass


def test_every_kind_becomes_the_drgn_type():
    import drgn

    from kcoretool.debuginfo.btf_types import BtfTypes
    btf = parse_btf(every_kind().build(), name="test")
    prog = drgn.Program(drgn.host_platform)
    types = BtfTypes(prog, [btf])
    types.register(prog)
    s = prog.type("struct vmap_thing")
    assert (s.size, [m.name for m in s.members]) == (32, ["a", "b", "name", "p"])
    assert [(m.bit_offset, m.bit_field_size) for m in s.members] == [(0, 3), (3, 5), (32, None), (192, None)]
    assert str(s.member("name").type) == "char [16]" and str(s.member("p").type) == "int *"
    assert types.type_by_id(btf, 17).type_name() == "const volatile u32"
    assert str(types.type_by_id(btf, 25)) == "int *"          # type tags are dropped
    e = prog.type("enum vmap_kind")
    assert [(x.name, x.value) for x in e.enumerators] == [("VK_NONE", 0), ("VK_NEG", -1)]
    assert [(x.name, x.value) for x in prog.type("enum big").enumerators] == [("BIG_LOW", 1), ("BIG_TOP", 1 << 63)]
    f = types.function_type("vread_iter")
    assert [p.name for p in f.parameters] == ["addr", "name"] and f.is_variadic
    assert str(types.variable_type("vmap_count")) == "int"
    assert prog.type("double").kind == drgn.TypeKind.FLOAT
    assert types.enumerator("SBIG_NEG")[1] == -2
    assert prog.type("struct vm_struct").is_complete() is False


def test_an_array_of_void_is_one_error():
    """Found by the mutation test below: one byte made ``char name[16]`` an
    array of void, which drgn took and then failed on with a TypeError
    when the member's type was first looked at."""
    import drgn

    from kcoretool.debuginfo.btf_types import BtfTypes
    btf = parse_btf(_mutated([(112, 0)]), name="fuzz")
    types = BtfTypes(drgn.Program(drgn.host_platform), [btf])
    with pytest.raises(BtfError, match=r"^fuzz BTF: type 6: an array of void$"):
        types.type_by_id(btf, 7).member("name").type


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(24, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_blobs_become_drgn_types_or_one_error(edits):
    _drgn_types(_mutated(edits))


def test_pointer_and_typedef_loops_stop():
    import drgn

    from kcoretool.debuginfo.btf_types import BtfTypes
    b = BtfBuilder()
    b.raw(0, 2, 0, 1)                 # 1 a pointer to itself
    b.raw(b.s("t"), 8, 0, 3)          # 2 typedef t -> 3
    b.raw(b.s("u"), 8, 0, 2)          # 3 typedef u -> 2
    btf = parse_btf(b.build(), name="loop")
    types = BtfTypes(drgn.Program(drgn.host_platform), [btf])
    for tid in (1, 2):
        with pytest.raises(drgn.MissingDebugInfoError, match="^loop BTF: type [0-9]+: chain too deep$"):
            types.type_by_id(btf, tid)
