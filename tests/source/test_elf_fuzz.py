"""Property tests: whatever bytes a core holds, opening and reading it either
works or raises KcoreToolError -- never anything else, never unbounded."""

import io
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcoretool.errors import KcoreToolError
from kcoretool.source import open_core

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
GOOD = sorted(p for p in FIXTURES.glob("*.core") if p.stat().st_size <= 2 << 20
              and p.read_bytes()[:4] == b"\x7fELF")


def exercise(blob: bytes) -> None:
    """Open, describe and read everything the way the CLI would."""
    try:
        core = open_core(io.BytesIO(blob))
    except KcoreToolError:
        return
    with core:
        for attr in ("release", "page_size", "kaslr_offset", "crash_time", "cpus"):
            try:
                getattr(core, attr)
            except KcoreToolError:
                pass
        core.segment_counts()
        for seg in core.segments[:16]:
            for physical in (False, True):
                start = seg.paddr if physical else seg.vaddr
                if start is None:
                    continue
                try:
                    core.read_ex(start, min(seg.memsz, 4096) + 16, physical)
                except KcoreToolError:
                    pass


def _mutations(data: bytes):
    positions = st.integers(min_value=0, max_value=max(0, min(len(data), 8192) - 1))
    return st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=16)


@pytest.mark.skipif(not GOOD, reason="no ELF fixtures")
@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_headers_only_raise_our_error(path, data):
    blob = bytearray(path.read_bytes())
    # Mutate the headers and notes (the first pages), where parsing happens.
    for pos, value in data.draw(_mutations(bytes(blob))):
        blob[pos] = value
    exercise(bytes(blob))


@pytest.mark.skipif(not GOOD, reason="no ELF fixtures")
@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=0))
def test_truncation_only_raises_our_error(path, cut):
    blob = path.read_bytes()
    exercise(blob[: cut % (len(blob) + 1)])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_with_elf_magic(tail):
    exercise(b"\x7fELF\x02\x01\x01" + tail)
