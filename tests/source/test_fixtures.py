"""The synthetic fixtures: reproducible from fixtures/specs.py, small, and what
independent parsers (pyelftools, binutils readelf, drgn) say they are."""
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FIX = REPO / "fixtures"
SOURCES = {"generate.py", "specs.py", "README.md"}
EXPECTED = json.loads((FIX / "expected.json").read_text())
GOOD = EXPECTED["fixtures"]
ELF_GOOD = [n for n, f in GOOD.items() if f["kind"] in ("kcore", "elf-vmcore")]
XOR = EXPECTED["formula_xor"]
ALL_ONES = 0xFFFFFFFFFFFFFFFF


def committed_files():
    out = set()
    for p in FIX.rglob("*"):
        rel = p.relative_to(FIX)
        # fixtures/demo is a real kernel's dump (python -m tests.lab demo), not synthetic.
        if p.is_file() and "__pycache__" not in rel.parts and rel.parts[0] != "demo" and str(rel) not in SOURCES:
            out.add(str(rel))
    return out


def word(addr):
    return struct.pack("<Q", addr ^ XOR)


def expected_bytes(seg, start, length):
    """What the file holds for [start, start+length) of segment seg's file image."""
    base = seg["paddr"] if seg["content"] == "physical" else seg["vaddr"]
    assert start % 8 == 0 and length % 8 == 0
    return b"".join(word(base + k) for k in range(start, start + length, 8))


# --------------------------------------------------------------------------- reproducible
@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixtures")
    subprocess.run([sys.executable, str(FIX / "generate.py"), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def test_regenerated_file_set_is_committed_set(regenerated):
    made = {str(p.relative_to(regenerated)) for p in regenerated.rglob("*") if p.is_file()}
    assert made == committed_files()


def test_regenerated_files_are_byte_identical(regenerated):
    for rel in sorted(committed_files()):
        assert (regenerated / rel).read_bytes() == (FIX / rel).read_bytes(), rel


def test_generation_is_deterministic(regenerated, tmp_path):
    subprocess.run([sys.executable, str(FIX / "generate.py"), "--out", str(tmp_path)],
                   check=True, stdout=subprocess.DEVNULL)
    for rel in committed_files():
        assert (tmp_path / rel).read_bytes() == (regenerated / rel).read_bytes(), rel


def test_size_budget():
    sizes = {rel: (FIX / rel).stat().st_size for rel in committed_files()}
    for rel, size in sizes.items():
        assert size <= 1 << 20, rel
        if rel.startswith("hostile/"):
            assert size <= 64 << 10, rel
    assert sum(sizes.values()) <= 4 << 20


def test_expected_lists_every_fixture():
    listed = set(GOOD) | set(EXPECTED["hostile"]) | {"expected.json"}
    assert listed == committed_files()
    for rel, h in EXPECTED["hostile"].items():
        assert h["why"] and (FIX / rel).stat().st_size == h["size"]


# --------------------------------------------------------------------------- raw layout
@pytest.mark.parametrize("name", ELF_GOOD)
def test_raw_headers_and_contents(name):
    f = GOOD[name]
    data = (FIX / name).read_bytes()
    assert len(data) == f["size"]
    ident = data[:16]
    assert ident[:4] == b"\x7fELF" and ident[4] == 2 and ident[5] == 1 and ident[7] == 0
    (e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize,
     e_phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    assert (e_type, e_machine, e_version, e_flags, e_phentsize) == (4, 62, 1, 0, 56)
    assert e_phoff == f["e_phoff"] and e_phnum == f["e_phnum"] == len(f["segments"]) + 1
    assert e_shnum == f["e_shnum"]
    if f["producer"] == "qemu":
        assert (e_shoff, e_ehsize, e_phoff) == (64, 8, 64 + 2 * 64)   # QEMU 7.2 quirks
    else:
        assert (e_shoff, e_ehsize, e_phoff, e_shnum) == (0, 64, 64, 0)
    phdrs = [struct.unpack_from("<IIQQQQQQ", data, e_phoff + 56 * i) for i in range(e_phnum)]
    assert phdrs[0][0] == 4 and phdrs[0][2] == f["note_segment"]["offset"]
    for seg, p in zip(f["segments"], phdrs[1:]):
        p_type, p_flags, off, vaddr, paddr, filesz, memsz, p_align = p
        assert p_type == 1
        assert (off, vaddr, paddr, filesz, memsz) == (
            seg["offset"], seg["p_vaddr"], seg["p_paddr"], seg["filesz"], seg["memsz"])
        assert seg["paddr"] == (None if paddr == ALL_ONES else paddr)
        if f["producer"] == "kcore":
            assert (p_flags, p_align, filesz) == (7, 4096, memsz)
            assert off % 4096 == 0
        assert data[off:off + filesz] == expected_bytes(seg, 0, filesz)
        assert bytes.fromhex(seg["first_word"]) == data[off:off + 8]


def test_kcore_layout_follows_the_kernel():
    f = GOOD["kcore-6.1.core"]
    kinds = [s["kind"] for s in f["segments"]]
    assert kinds == ["text", "vmalloc", "modules", "ram", "vmemmap", "ram", "vmemmap"]
    v = GOOD["kcore-6.1-vsyscall.core"]
    assert [s["kind"] for s in v["segments"]] == ["user"] + kinds
    assert v["segments"][0]["vaddr"] == 0xFFFFFFFFFF600000 and v["segments"][0]["paddr"] is None
    lay = f["layout"]
    text = f["segments"][0]
    assert text["vaddr"] == 0xFFFFFFFF81000000 + f["kaslr_offset"] == lay["text"]
    assert text["paddr"] == text["vaddr"] - 0xFFFFFFFF80000000 + lay["phys_base"]
    for s in f["segments"]:
        if s["kind"] == "ram":
            assert s["vaddr"] == lay["page_offset_base"] + s["paddr"]
        elif s["kind"] != "text":
            assert s["paddr"] is None
    # notes: kernel order and sizes
    assert [(n["name"], n["type"]) for n in f["notes"]] == [
        ("CORE", 1), ("CORE", 3), ("CORE", 4), ("VMCOREINFO", 0)]
    assert [n["descsz"] for n in f["notes"][:2]] == [336, 136]
    notes_end = f["note_segment"]["offset"] + f["note_segment"]["filesz"]
    assert f["segments"][0]["offset"] == -(-notes_end // 4096) * 4096  # data_offset


def test_vmcore_has_excluded_tail_and_crashtime():
    f = GOOD["vmcore-6.1.core"]
    assert f["cpus"] == 2 and f["crash_time"] and "CRASHTIME" in f["vmcoreinfo"]
    assert any(s["filesz"] < s["memsz"] for s in f["segments"])
    assert [s["kind"] for s in f["segments"]][0] == "text"
    assert "SYMBOL(vmap_area_list)" in f["vmcoreinfo"]
    q = GOOD["vmcore-qemu-6.12.core"]
    assert "NUMBER(VMALLOC_START)" in q["vmcoreinfo"] and "SYMBOL(vmap_area_list)" not in q["vmcoreinfo"]
    assert [n["name"] for n in q["notes"]] == ["CORE", "CORE", "QEMU", "QEMU", "VMCOREINFO"]
    assert all(s["vaddr"] is None for s in q["segments"])


# --------------------------------------------------------------------------- pyelftools
@pytest.mark.parametrize("name", ELF_GOOD)
def test_pyelftools_agrees(name):
    from elftools.elf.elffile import ELFFile

    f = GOOD[name]
    with open(FIX / name, "rb") as fh:
        elf = ELFFile(fh)
        assert elf["e_type"] == "ET_CORE" and elf["e_machine"] == "EM_X86_64"
        segs = list(elf.iter_segments())
        assert segs[0]["p_type"] == "PT_NOTE"
        notes = list(segs[0].iter_notes())
        assert [(n["n_name"], n["n_descsz"]) for n in notes] == [
            (n["name"], n["descsz"]) for n in f["notes"]]
        vmci = notes[-1]
        fh.seek(vmci["n_offset"] + 12 + 12)
        text = fh.read(vmci["n_descsz"]).decode()
        assert dict(line.split("=", 1) for line in text.splitlines()) == f["vmcoreinfo"]
        for n in notes:
            if n["n_type"] == "NT_PRSTATUS":
                assert n["n_descsz"] == 336
        loads = segs[1:]
        assert len(loads) == len(f["segments"])
        for seg, s in zip(f["segments"], loads):
            assert s["p_type"] == "PT_LOAD"
            assert (s["p_offset"], s["p_vaddr"], s["p_paddr"], s["p_filesz"], s["p_memsz"]) == (
                seg["offset"], seg["p_vaddr"], seg["p_paddr"], seg["filesz"], seg["memsz"])
            assert s.data() == expected_bytes(seg, 0, seg["filesz"])


# --------------------------------------------------------------------------- readelf
READELF = shutil.which("readelf")


@pytest.mark.skipif(READELF is None, reason="binutils readelf not installed")
@pytest.mark.parametrize("name", ELF_GOOD)
def test_readelf_agrees(name):
    f = GOOD[name]
    out = subprocess.run([READELF, "-lnW", str(FIX / name)], check=True, capture_output=True,
                         text=True, env=dict(os.environ, LC_ALL="C"))
    assert "Warning" not in out.stderr and "Error" not in out.stderr
    loads = [line.split() for line in out.stdout.splitlines() if line.strip().startswith("LOAD")]
    got = [tuple(int(x, 16) for x in l[1:6]) for l in loads]
    want = [(s["offset"], s["p_vaddr"], s["p_paddr"], s["filesz"], s["memsz"]) for s in f["segments"]]
    assert got == want
    owners = [line.split()[0] for line in out.stdout.splitlines()
              if line.startswith("  ") and line.split() and line.split()[0] in ("CORE", "QEMU", "VMCOREINFO")]
    assert owners == [n["name"] for n in f["notes"]]


# --------------------------------------------------------------------------- drgn
@pytest.mark.parametrize("name", ["vmcore-6.1.core", "vmcore-qemu-6.12.core", "kcore-6.1.core"])
def test_drgn_reads_physical_memory(name):
    drgn = pytest.importorskip("drgn")
    f = GOOD[name]
    prog = drgn.Program()
    prog.set_core_dump(str(FIX / name))
    assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL
    for seg in f["segments"]:
        if seg["kind"] != "ram":
            continue
        p = seg["paddr"]
        assert prog.read(p, 8, True) == word(p)
        last = p + seg["filesz"] - 8
        assert prog.read(last, 8, True) == word(last)
        if seg["memsz"] > seg["filesz"]:
            assert prog.read(p + seg["filesz"], 64, True) == bytes(64)  # excluded: zeros
    if f["producer"] != "qemu":  # virtual reads straight from the PT_LOADs' p_vaddr
        for seg in f["segments"]:
            if seg["content"] == "virtual":
                v = seg["vaddr"] + 0x100
                assert prog.read(v, 8) == word(v), seg["kind"]


# --------------------------------------------------------------------------- makedumpfile formats
def test_flattened_header():
    data = (FIX / "flattened.core").read_bytes()
    assert data[:16] == b"makedumpfile\0\0\0\0"
    assert struct.unpack_from(">qq", data, 16) == (1, 1)
    assert data[32:4096] == bytes(4064)
    off, size = struct.unpack_from(">qq", data, 4096)
    assert off == 0 and data[4112:4112 + size] == (FIX / "kdump-header-only.core").read_bytes()
    assert struct.unpack_from(">qq", data, 4112 + size) == (-1, -1)
    assert len(data) == 4112 + size + 16


def test_kdump_header_only():
    data = (FIX / "kdump-header-only.core").read_bytes()
    f = GOOD["kdump-header-only.core"]
    assert len(data) == 464 and data[:8] == b"KDUMP   "
    assert struct.unpack_from("<i", data, 8)[0] == 6
    assert data[12 + 2 * 65:12 + 3 * 65].rstrip(b"\0").decode() == f["release"]
    block_size, = struct.unpack_from("<i", data, 428)
    nr_cpus, = struct.unpack_from("<I", data, 460)
    assert (block_size, nr_cpus) == (f["page_size"], f["cpus"])


# --------------------------------------------------------------------------- hostile
def _ehdr(data):
    return struct.unpack_from("<HHIQQQIHHHHHH", data, 16)


def test_hostile_files_are_what_they_say():
    h = lambda n: (FIX / "hostile" / n).read_bytes()  # noqa: E731
    assert h("empty.core") == b""
    assert not h("not-elf.core").startswith(b"\x7fELF")
    assert h("elf32.core")[4] == 1
    assert h("big-endian.core")[5] == 2 and struct.unpack_from(">H", h("big-endian.core"), 16)[0] == 4
    assert _ehdr(h("et-exec.core"))[0] == 2
    assert _ehdr(h("aarch64.core"))[1] == 183
    assert len(h("header-truncated.core")) == 40
    assert _ehdr(h("phoff-beyond-eof.core"))[4] > len(h("phoff-beyond-eof.core"))
    assert len(h("phdrs-truncated.core")) == 64 + 2 * 56 + 20
    assert _ehdr(h("phentsize-40.core"))[8] == 40
    assert _ehdr(h("phnum-0.core"))[9] == 0
    e = _ehdr(h("phnum-xnum.core"))
    assert e[9] == 0xFFFF and e[5] == 0 and e[11] == 0
    d = h("note-beyond-eof.core")
    _, _, off, _, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", d, 64)
    assert off + filesz > len(d)
    for n, fld in (("note-namesz-huge.core", 0), ("note-descsz-huge.core", 1)):
        d = h(n)
        off = struct.unpack_from("<Q", d, 64 + 8)[0]
        assert struct.unpack_from("<III", d, off)[fld] == 0xFFFFFFFF
    d = h("note-truncated.core")
    off, filesz = struct.unpack_from("<Q", d, 64 + 8)[0], struct.unpack_from("<Q", d, 64 + 32)[0]
    pos = off
    while pos + 12 <= off + filesz:
        namesz, descsz, _ = struct.unpack_from("<III", d, pos)
        end = pos + 12 + -(-namesz // 4) * 4 + -(-descsz // 4) * 4
        if end > off + filesz:
            break
        pos = end
    assert pos < off + filesz and d[pos + 12:pos + 22] == b"VMCOREINFO"  # last note cut short
    d = h("load-beyond-eof.core")
    last = struct.unpack_from("<IIQQQQQQ", d, 64 + 56 * 7)
    assert last[2] < len(d) < last[2] + last[5]
    d = h("filesz-gt-memsz.core")
    p = struct.unpack_from("<IIQQQQQQ", d, 64 + 56)
    assert p[5] > p[6]
    d = h("kcore-vaddr-overlap.core")
    a, b = (struct.unpack_from("<IIQQQQQQ", d, 64 + 56 * i) for i in (2, 3))
    assert a[3] < b[3] < a[3] + a[6]
    d = h("vmcore-paddr-overlap.core")
    a, b = (struct.unpack_from("<IIQQQQQQ", d, 64 + 56 * i) for i in (2, 3))
    assert a[4] < b[4] < a[4] + a[6]
    d = h("vmcoreinfo-garbage.core")
    assert b"PAGESIZE=four-kilobytes" in d
    with pytest.raises(UnicodeDecodeError):
        d[d.index(b"OSRELEASE="):].split(b"\0")[0].decode()


def test_readme_mentions_every_fixture():
    readme = (FIX / "README.md").read_text()
    for rel in committed_files():
        assert f"`{pathlib.PurePath(rel).name}`" in readme, rel
