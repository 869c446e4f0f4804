"""Damaged kdump files (issue 14): every header and sub-header field at
boundary values, cuts at every structural boundary and at random points,
random bytes in the bitmaps and page descriptors -- each case runs in its
own forked child, so a SIGBUS inside libkdumpfile fails the test instead of
killing pytest."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import random
import struct

import pytest

from kcoretool.errors import KcoreToolError
from kcoretool.source import open_core
from kcoretool.source.kdumpcheck import DESC, check_kdump

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "demo" / "demo-6.12.kdump"

pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="no demo fixture")


def _campaign():
    spec = importlib.util.spec_from_file_location("hostile_campaign", ROOT / "benchmarks" / "hostile_campaign.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def demo():
    blob = DEMO.read_bytes()
    with open(DEMO, "rb") as f:
        lay = check_kdump(str(DEMO), f, len(blob))
    return blob, lay


def _run(camp, tmp_path, blob, argv):
    """Run one case; ``blob`` is the file's bytes, or None to use
    tmp_path/core as it is."""
    core = tmp_path / "core"
    if blob is not None:
        core.write_bytes(blob)
    got = []
    camp.campaign.run([str(tmp_path)], [0], lambda i, j: camp.campaign.Start(["-c", str(core), *argv]),
                      lambda i, j, start, out: got.append(out), 60)
    return got[0].how, got[0].code, got[0].err


def _check(kind, code, err, what):
    assert kind == "exit", f"{what}: {kind} {code}"
    assert "Traceback" not in err, f"{what}: {err}"
    assert "unexpected error" not in err, f"{what}: {err}"
    errors = [ln for ln in err.splitlines() if ln.startswith("kcoretool: ") and "note:" not in ln
              and "warning:" not in ln]
    assert len(errors) <= 1, f"{what}: {err}"
    if code != 0:
        assert errors, f"{what}: exit {code} without a message: {err!r}"


_FIELDS = [("header_version", 8, "<i"), ("status", 420, "<i"), ("block_size", 424, "<i"),
           ("sub_hdr_size", 428, "<i"), ("bitmap_blocks", 432, "<I"), ("max_mapnr", 436, "<I"),
           ("nr_cpus", 460, "<i"), ("ts_sec", 400, "<q")]
_SUB = ["phys_base", "dump_level", "split", "start_pfn", "end_pfn", "offset_vmcoreinfo", "size_vmcoreinfo",
        "offset_note", "size_note", "offset_eraseinfo", "size_eraseinfo", "start_pfn_64", "end_pfn_64",
        "max_mapnr_64"]
_VALUES = [0, 0x80000000, (1 << 64) - 1]


def _sub_fields():
    off = 4096
    for name, ch in zip(_SUB, "QiiQQQQQQQQQQQ"):
        yield name, off, "<" + ch
        off += struct.calcsize("<" + ch)


def test_every_header_field_at_boundary_values(demo, tmp_path):
    camp = _campaign()
    blob, _ = demo
    core = tmp_path / "core"
    core.write_bytes(blob)
    for name, off, fmt in [*_FIELDS, *_sub_fields()]:
        size = struct.calcsize(fmt)
        for v in _VALUES:
            with open(core, "r+b") as f:  # patched in place, undone below
                f.seek(off)
                f.write((v % (1 << 8 * size)).to_bytes(size, "little"))
            kind, code, err = _run(camp, tmp_path, None, ["read", "--physical", "0x1000", "16"])
            _check(kind, code, err, f"{name}={v:#x}")
            with open(core, "r+b") as f:
                f.seek(off)
                f.write(blob[off:off + size])


def test_cuts_at_every_boundary_and_at_random(demo, tmp_path):
    camp = _campaign()
    blob, lay = demo
    sub = lay.sub
    desc_end = lay.desc_offset + lay.dumped_pages * DESC.size
    points = {0, 8, 463, 464, 4095, 4096, 4200, 8192, sub[5], sub[5] + sub[6], sub[7], sub[7] + sub[8],
              (1 + lay.sub_hdr_size) * 4096, lay.desc_offset, desc_end, len(blob) - 1}
    points |= {p + d for p in list(points) for d in (-1, 1)}
    rng = random.Random(14)
    points |= {rng.randrange(len(blob)) for _ in range(4)}
    for cut in sorted(p for p in points if 0 <= p < len(blob)):
        kind, code, err = _run(camp, tmp_path, blob[:cut], ["read", "--physical", "0x1000", "16"])
        _check(kind, code, err, f"cut at {cut}")
        if 16 <= cut < desc_end:
            assert code == 1, f"cut at {cut}: {err}"
            assert "kdump file truncated at" in err or "damaged" in err, f"cut at {cut}: {err}"


def test_random_bytes_in_bitmaps_and_descriptors(demo, tmp_path):
    camp = _campaign()
    blob, lay = demo
    bitmap = ((1 + lay.sub_hdr_size) * lay.block_size, lay.desc_offset)
    descs = (lay.desc_offset, lay.desc_offset + lay.dumped_pages * DESC.size)
    rng = random.Random(1414)
    for _ in range(8):
        lo, hi = rng.choice([bitmap, descs])
        n = rng.randrange(1, 48)
        at = rng.randrange(lo, hi - n)
        b = bytearray(blob)
        b[at:at + n] = bytes(rng.randrange(256) for _ in range(n))
        kind, code, err = _run(camp, tmp_path, bytes(b), ["read", "--physical", hex(rng.choice(
            [0x1000, 0x100000, 0x2000000])), "4096"])
        _check(kind, code, err, f"{n} random bytes at {at:#x}")


# -- exact messages -------------------------------------------------------------

def test_cut_in_the_headers_exact_message(demo, tmp_path):
    blob, _ = demo
    for cut, says in ((4200, 12288), (8192, 12288), (30000, 567472)):
        p = tmp_path / f"t{cut}"
        p.write_bytes(blob[:cut])
        with pytest.raises(KcoreToolError) as e:
            open_core(p)
        assert str(e.value) == (f"{p}: kdump file truncated at {cut} bytes; its header says {says} "
                                "\u2014 the dump is incomplete")


def test_cut_in_the_page_data_opens_with_truncated_pages(demo, tmp_path):
    blob, _ = demo
    p = tmp_path / "cut"
    p.write_bytes(blob[:5000000])
    with open_core(p) as core:
        assert core.incomplete == ("12973 of 22450 dumped pages lie past the end of the file (50.7 MiB "
                                   "missing; the file is 18116064 bytes short)")
        assert core.layout.truncated[0] == (14083, 14884)
        res = core.read_ex(0x3702ff0, 0x20, physical=True)
        assert res.data[16:] == bytes(16)
        assert res.truncated == [(0x3703000, 0x10)]
        assert res.zero_filled == [(0x3702ff0, 0x10)]  # pfn 0x3702 was not dumped at all
        # A page before the cut reads as in the whole file.
        assert core.read(0x1000, 64, physical=True) == open_core(DEMO).read(0x1000, 64, physical=True)


def test_descriptor_size_too_big_is_refused(demo, tmp_path):
    blob, lay = demo
    b = bytearray(blob)
    struct.pack_into("<I", b, lay.desc_offset + 24 * 5 + 8, 0x7FFFFFFF)
    p = tmp_path / "bad"
    p.write_bytes(bytes(b))
    with pytest.raises(KcoreToolError) as e:
        open_core(p)
    assert str(e.value) == (f"{p}: kdump header is damaged: page descriptor 5 says 0x7fffffff bytes for a "
                            "4096-byte page; the file cannot be read")


def test_sub_header_offsets_past_the_end(demo, tmp_path):
    blob, _ = demo
    for name, off, v in (("offset_note", 4096 + 56, len(blob) + 4096), ("offset_vmcoreinfo", 4096 + 40, 1 << 63),
                         ("sub_hdr_size", 428, 0x80000000)):
        b = bytearray(blob)
        size = 4 if name == "sub_hdr_size" else 8
        b[off:off + size] = (v % (1 << 8 * size)).to_bytes(size, "little")
        p = tmp_path / name
        p.write_bytes(bytes(b))
        with pytest.raises(KcoreToolError) as e:
            open_core(p)
        assert str(e.value).startswith(f"{p}: kdump "), name
        assert "\n" not in str(e.value)
    assert os.path.getsize(DEMO) == len(blob)
