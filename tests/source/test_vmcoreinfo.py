import pytest

from kcoretool.errors import CoreFormatError
from kcoretool.source.vmcoreinfo import VmcoreInfo

TEXT = b"""OSRELEASE=6.1.0-56-amd64
BUILD-ID=4e1a5ae1a0bd3a1e0f4a5a0d2e3e9c8b5f4d3c2b
PAGESIZE=4096
SYMBOL(init_uts_ns)=ffffffff9ca13a00
SYMBOL(_stext)=ffffffff9b000000
OFFSET(vmap_area.va_start)=0
SIZE(page)=64
LENGTH(node_data)=1024
NUMBER(phys_base)=-1073741824
NUMBER(VMALLOC_START)=0xffffb3c5c0000000
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129
KERNELOFFSET=1a000000
CRASHTIME=1763800000
\x00\x00\x00"""


def test_typed_accessors():
    info = VmcoreInfo(TEXT)
    assert info.osrelease == "6.1.0-56-amd64"
    assert info.page_size == 4096
    assert info.kernel_offset == 0x1A000000
    assert info.build_id == "4e1a5ae1a0bd3a1e0f4a5a0d2e3e9c8b5f4d3c2b"
    assert info.crash_time == 1763800000
    assert info.symbol("_stext") == 0xFFFFFFFF9B000000
    assert info.symbol("missing") is None
    assert info.offset("vmap_area", "va_start") == 0
    assert info.size("page") == 64
    assert info.length("node_data") == 1024
    assert info.number("phys_base") == -1073741824
    assert info.number("VMALLOC_START") == 0xFFFFB3C5C0000000
    assert info.number("PAGE_BUDDY_MAPCOUNT_VALUE") == -129
    assert dict(info.symbols()) == {"init_uts_ns": 0xFFFFFFFF9CA13A00, "_stext": 0xFFFFFFFF9B000000}
    assert len(info) == 13
    assert info.malformed == []


def test_lenient_parse_strict_accessor():
    info = VmcoreInfo(b"OSRELEASE=6.12.0\nno equals sign here\n\xff\xfe=1\nPAGESIZE=4k\n", where="x.core")
    assert info.osrelease == "6.12.0"
    assert info.malformed == ["no equals sign here"]
    with pytest.raises(CoreFormatError) as e:
        info.page_size
    assert str(e.value) == "x.core: VMCOREINFO PAGESIZE='4k' is not a number; the note is damaged"


def test_page_size_must_be_power_of_two():
    with pytest.raises(CoreFormatError, match="PAGESIZE=4095 is not a power of two"):
        VmcoreInfo(b"PAGESIZE=4095\n").page_size
