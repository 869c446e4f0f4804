"""The ELF core layer and its CLI commands on the committed fixtures:
exact values from fixtures/expected.json, exact bytes from the memory
formula, exact one-line errors for every hostile file."""

import json
import pathlib
import struct
import subprocess
import sys

import pytest

from kcoretool.errors import AddressError, CoreFormatError, KcoreToolError
from kcoretool.source import open_core

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
XOR = 0x5A5A5A5A5A5A5A5A
ELF_FIXTURES = [n for n, e in EXPECTED["fixtures"].items() if e["kind"] in ("kcore", "elf-vmcore")]


def word(addr: int) -> bytes:
    return struct.pack("<Q", addr ^ XOR)


def words(addr: int, size: int) -> bytes:
    """Expected memory at addr (8-aligned) per the fixture formula."""
    return b"".join(word(a) for a in range(addr, addr + size, 8))


def kcoretool(*args):
    return subprocess.run([sys.executable, "-m", "kcoretool", *args], capture_output=True, text=True)


@pytest.mark.parametrize("name", ELF_FIXTURES)
def test_facts_match_expected(name):
    exp = EXPECTED["fixtures"][name]
    with open_core(FIXTURES / name) as core:
        assert core.kind == exp["kind"]
        assert core.release == exp["release"]
        assert core.page_size == exp["page_size"]
        assert core.kaslr_offset == exp["kaslr_offset"]
        assert core.crash_time == exp["crash_time"]
        # A kcore's single NT_PRSTATUS is a zeroed placeholder: no CPU count
        # unless it is the live /proc/kcore.
        assert core.cpus == (None if exp["kind"] == "kcore" else exp["cpus"])
        got = [s.to_dict() for s in core.segments]
        want = [{k: s[k] for k in ("index", "kind", "vaddr", "paddr", "filesz", "memsz", "offset")}
                for s in exp["segments"]]
        assert got == want
        assert [(n.name, n.type, n.size) for n in core.notes.all] == [
            (n["name"], n["type"], n["descsz"]) for n in exp["notes"]]
        assert dict(core.vmcoreinfo) == exp["vmcoreinfo"]


@pytest.mark.parametrize("name", ELF_FIXTURES)
def test_every_segment_reads_back_the_formula(name):
    exp = EXPECTED["fixtures"][name]
    with open_core(FIXTURES / name) as core:
        for seg in exp["segments"]:
            encoded = seg["paddr"] if seg["content"] == "physical" else seg["vaddr"]
            for physical, start in ((False, seg["vaddr"]), (True, seg["paddr"])):
                if start is None:
                    continue
                if physical and seg["kind"] != "ram" and core.find_segment(start, True) is not seg_obj(core, seg):
                    continue  # e.g. kdump text aliasing RAM: the RAM segment answers
                res = core.read_ex(start, seg["memsz"], physical)
                filesz = seg["filesz"]
                assert res.data[:filesz] == words(encoded, filesz)
                assert res.data[filesz:] == bytes(seg["memsz"] - filesz)
                assert res.zero_filled == ([(start + filesz, seg["memsz"] - filesz)]
                                           if filesz < seg["memsz"] else [])


def seg_obj(core, seg):
    return next(s for s in core.segments if s.index == seg["index"])


def test_kcore_direct_map_and_physical_agree():
    with open_core(FIXTURES / "kcore-6.1.core") as core:
        # RAM at phys 0x1000 is mapped at page_offset_base + 0x1000.
        pob = EXPECTED["fixtures"]["kcore-6.1.core"]["layout"]["page_offset_base"]
        assert core.read(pob + 0x1ff8, 16) == core.read(0x1FF8, 16, physical=True) == words(0x1FF8, 16)


def test_read_across_segments_and_holes():
    with open_core(FIXTURES / "vmcore-qemu-6.12.core") as core:
        segs = core.segments
        a, b = segs[0], segs[1]
        if a.paddr + a.memsz == b.paddr:  # contiguous: one read spans both
            assert core.read(b.paddr - 8, 16, physical=True) == words(b.paddr - 8, 16)
        else:  # a gap between them is an error naming the first uncovered byte
            with pytest.raises(AddressError) as e:
                core.read(a.paddr + a.memsz - 8, 16, physical=True)
            assert e.value.address == a.paddr + a.memsz
            assert str(e.value) == (
                f"{FIXTURES / 'vmcore-qemu-6.12.core'}: no segment covers physical address "
                f"{a.paddr + a.memsz:#x}; Core.segments lists what the core holds")


def test_uncovered_virtual_address():
    with open_core(FIXTURES / "kcore-6.1.core") as core:
        with pytest.raises(AddressError) as e:
            core.read(0xFFFF800000000000, 8)
        assert e.value.address == 0xFFFF800000000000


def test_kcore_notes():
    with open_core(FIXTURES / "kcore-6.1.core") as core:
        n = core.notes
        assert n.taskstruct_size == 10176
        assert n.prpsinfo.fname == "vmlinux"
        assert n.prpsinfo.state == "R"
        assert [p.pid for p in n.prstatus] == [0]


def test_vmcore_prstatus_pids():
    with open_core(FIXTURES / "vmcore-6.1.core") as core:
        assert [p.pid for p in core.notes.prstatus] == EXPECTED["fixtures"]["vmcore-6.1.core"]["pids"]


def test_file_object_source():
    with open(FIXTURES / "kcore-6.1.core", "rb") as f:
        core = open_core(f)
        assert core.kind == "kcore"
        core.close()
        assert not f.closed  # not ours to close


def test_kdump_header_only_is_refused_as_truncated():
    # The first 464 bytes of a kdump file: libkdumpfile would die by SIGBUS.
    path = FIXTURES / "kdump-header-only.core"
    with pytest.raises(KcoreToolError) as e:
        open_core(path)
    assert str(e.value) == (f"{path}: kdump file truncated at 464 bytes; its header says 4096 "
                            "\u2014 the dump is incomplete")


# -- CLI ----------------------------------------------------------------------

def test_info_json_kcore():
    r = kcoretool("-c", str(FIXTURES / "kcore-6.1.core"), "--json", "info")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "path": str(FIXTURES / "kcore-6.1.core"), "kind": "kcore", "live": False,
        "release": "6.1.0-56-amd64", "arch": "x86_64", "page_size": 4096,
        "kaslr_offset": 0x1A000000, "cpus": None, "crash_time": None, "vmcoreinfo": "note",
        "segments": {"text": 1, "vmalloc": 1, "modules": 1, "ram": 2, "vmemmap": 2},
        # The fixture's VMCOREINFO has no kallsyms symbols, as before 6.0, but
        # KERNELOFFSET: the plan is BTF through kallsyms found in the image.
        "debuginfo": {"mode": "auto", "kind": "btf", "source": "kernel memory",
                      "reason": "no vmlinux with DWARF for 6.1.0-56-amd64 in the standard places"},
    }


def test_info_table_vmcore():
    r = kcoretool("-c", str(FIXTURES / "vmcore-6.1.core"), "info")
    assert r.returncode == 0
    lines = dict(line.split(None, 1) if not line.startswith(("page", "KASLR", "crash"))
                 else (line[:12].strip(), line[14:]) for line in r.stdout.splitlines())
    assert lines["kind"] == "elf-vmcore"
    assert lines["release"] == "6.1.0-56-amd64"
    assert lines["page size"] == "4096"
    assert lines["KASLR offset"] == "0xe800000"
    assert lines["CPUs"] == "2"
    assert lines["crash time"] == "2026-11-10 08:40:00 UTC"
    assert lines["segments"] == "text 1, ram 3"


def test_segments_json_and_table():
    r = kcoretool("-c", str(FIXTURES / "kcore-6.1-vsyscall.core"), "--json", "segments")
    segs = json.loads(r.stdout)
    assert [s["kind"] for s in segs] == ["user", "text", "vmalloc", "modules", "ram", "vmemmap", "ram", "vmemmap"]
    assert segs[0]["vaddr"] == 0xFFFFFFFFFF600000 and segs[0]["paddr"] is None
    r = kcoretool("-c", str(FIXTURES / "kcore-6.1.core"), "segments")
    rows = r.stdout.splitlines()
    assert rows[0].split() == ["#", "kind", "vaddr", "vend", "paddr", "size", "in", "file", "offset"]
    assert rows[2].split() == ["1", "text", "0xffffffff9b000000", "0xffffffff9b010000", "0x1d200000", "64K", "0x4000"]
    assert rows[3].split() == ["2", "vmalloc", "0xffffb3c5c0000000", "0xffffb3c5c0010000", "-", "64K", "0x14000"]


def test_segments_table_shows_partial_file():
    r = kcoretool("-c", str(FIXTURES / "vmcore-6.1.core"), "segments")
    row = [line for line in r.stdout.splitlines() if line.split()[0] == "3"][0]
    assert row.split()[-3:] == ["64K", "48K", row.split()[-1]]


def test_notes_table():
    r = kcoretool("-c", str(FIXTURES / "kcore-6.1.core"), "notes")
    assert r.returncode == 0
    out = r.stdout
    assert "NT_PRSTATUS" in out and "NT_PRPSINFO" in out and "NT_TASKSTRUCT" in out
    assert "fname='vmlinux'" in out
    assert "OSRELEASE=6.1.0-56-amd64" in out


def test_vmcoreinfo_keys():
    core = str(FIXTURES / "kcore-6.1.core")
    r = kcoretool("-c", core, "vmcoreinfo", "OSRELEASE", "SYMBOL(_stext)")
    assert r.stdout == "OSRELEASE=6.1.0-56-amd64\nSYMBOL(_stext)=ffffffff9b000000\n"
    r = kcoretool("-c", core, "--json", "vmcoreinfo", "PAGESIZE")
    assert json.loads(r.stdout) == {"PAGESIZE": "4096"}
    r = kcoretool("-c", core, "vmcoreinfo", "NOPE")
    assert (r.returncode, r.stderr) == (
        1, f"kcoretool: {core}: VMCOREINFO has no key 'NOPE'; `kcoretool vmcoreinfo` lists them all\n")


def test_read_hexdump_symbol():
    r = kcoretool("-c", str(FIXTURES / "kcore-6.1.core"), "read", "_stext+8", "16")
    w1, w2 = word(0xFFFFFFFF9B000008), word(0xFFFFFFFF9B000010)
    groups = " ".join((w1 + w2)[i:i + 2].hex() for i in range(0, 16, 2))
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in w1 + w2)
    assert r.stdout == f"ffffffff9b000008: {groups}  {text}\n"


def test_read_raw_stdout_and_file(tmp_path):
    core = str(FIXTURES / "kcore-6.1.core")
    r = subprocess.run([sys.executable, "-m", "kcoretool", "-c", core, "read", "--physical", "0x1000", "0x2000",
                        "-o", "-"], capture_output=True)
    assert r.returncode == 0 and r.stdout == words(0x1000, 0x2000)
    out = tmp_path / "ram.bin"
    r = kcoretool("-c", core, "read", "0xffffb3c5c0000000", "64K", "-o", str(out))
    assert r.returncode == 0 and out.read_bytes() == words(0xFFFFB3C5C0000000, 0x10000)


def test_read_reports_zero_fill():
    exp = EXPECTED["fixtures"]["vmcore-6.1.core"]
    seg = next(s for s in exp["segments"] if s["filesz"] < s["memsz"])
    end_in_file = seg["paddr"] + seg["filesz"]
    r = kcoretool("-c", str(FIXTURES / "vmcore-6.1.core"), "read", "--physical", hex(end_in_file - 16), "32")
    assert r.returncode == 0
    assert r.stderr == (f"kcoretool: note: 16 bytes at physical {end_in_file:#x} are not in the file "
                        "(excluded from the dump) and read as zeros\n")
    r = kcoretool("-c", str(FIXTURES / "vmcore-6.1.core"), "--json", "read", "--physical", hex(end_in_file - 16), "32")
    got = json.loads(r.stdout)
    assert got["zero_filled"] == [{"address": end_in_file, "length": 16}]
    assert bytes.fromhex(got["data"]) == words(end_in_file - 16, 16) + bytes(16)


def test_read_uncovered_address_error():
    core = str(FIXTURES / "kcore-6.1.core")
    r = kcoretool("-c", core, "read", "--via", "elf", "0xffff800000000000", "8")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f"kcoretool: {core}: no segment covers virtual address 0xffff800000000000; "
                        "`kcoretool segments` lists what the core holds\n")


def test_flattened_message():
    core = str(FIXTURES / "flattened.core")
    r = kcoretool("-c", core, "info")
    assert (r.returncode, r.stderr) == (1, f"kcoretool: {core}: is a makedumpfile flattened file; convert it "
                                           f"first with `makedumpfile -R flattened.core.kdump < {core}`\n")


HOSTILE = {
    "empty.core": "is empty; give the path of a vmcore or /proc/kcore",
    "not-elf.core": "is not a core (no ELF, KDUMP or makedumpfile signature); give the path of a vmcore or /proc/kcore",
    "elf32.core": "32-bit ELF is not supported; kcoretool reads 64-bit x86_64 cores",
    "big-endian.core": "big-endian ELF is not supported; kcoretool reads little-endian x86_64 cores",
    "et-exec.core": "is an ELF ET_EXEC file, not a core (ET_CORE); give the path of a vmcore or /proc/kcore",
    "aarch64.core": "is a core for EM_AARCH64; only x86_64 (EM_X86_64) is supported",
    "header-truncated.core": "ELF header truncated (40 of 64 bytes); the file is cut short",
    "phoff-beyond-eof.core": "program headers (8 at offset 0xb000) run past the end of the file (0xa000 bytes); the file is truncated",
    "phdrs-truncated.core": "program headers (8 at offset 0x40) run past the end of the file (0xc4 bytes); the file is truncated",
    "phentsize-40.core": "e_phentsize is 40, not 56; the ELF header is damaged",
    "note-beyond-eof.core": "PT_NOTE #0 at offset 0x9fc0 size 0x11f0 runs past the end of the file (0xa000 bytes); the file is truncated or damaged",
    "note-namesz-huge.core": "note at offset 0x200 (PT_NOTE #0) claims name 4294967295 and descriptor 336 bytes but only 4580 remain; the notes are damaged or truncated",
    "note-descsz-huge.core": "note at offset 0x200 (PT_NOTE #0) claims name 5 and descriptor 4294967295 bytes but only 4580 remain; the notes are damaged or truncated",
    "note-truncated.core": "note at offset 0x814 (PT_NOTE #0) claims name 11 and descriptor 3012 bytes but only 112 remain; the notes are damaged or truncated",
    "load-beyond-eof.core": "PT_LOAD #7 at offset 0x9000 size 0x1000 runs past the end of the file (0x9800 bytes); the file is truncated or damaged",
    "filesz-gt-memsz.core": "PT_LOAD #1 has p_filesz 0x2000 > p_memsz 0x1000; the program header is damaged",
    "kcore-vaddr-overlap.core": "PT_LOAD #2 and #3 overlap at virtual 0xffffb3c5c0001000-0xffffb3c5c0002000; the program headers are damaged",
    "vmcore-paddr-overlap.core": "PT_LOAD #2 and #3 overlap at physical 0x2000-0x3000; the program headers are damaged",
    "vmcoreinfo-garbage.core": "VMCOREINFO PAGESIZE='four-kilobytes' is not a number; the note is damaged",
    "phnum-0.core": "has no program headers (e_phnum is 0)",
    "phnum-xnum.core": "e_phnum is PN_XNUM but there is no section 0 holding the real count; the ELF header is damaged",
}


def test_every_hostile_fixture_is_covered():
    assert {p.name for p in (FIXTURES / "hostile").glob("*.core")} == set(HOSTILE)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_one_line_error(name):
    path = str(FIXTURES / "hostile" / name)
    r = kcoretool("-c", path, "info")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f"kcoretool: {path}: {HOSTILE[name]}\n"
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_library_error(name):
    with pytest.raises(CoreFormatError):
        core = open_core(FIXTURES / "hostile" / name)
        # vmcoreinfo-garbage opens; the typed accessor is what fails
        core.page_size


def test_sysfs_vmcoreinfo_fallback(tmp_path, monkeypatch):
    """Kernels before 4.19 put no VMCOREINFO note in kcore: the live path
    reads /sys/kernel/vmcoreinfo ("phys size") and the note from RAM."""
    from kcoretool.source import elfcore

    blob = bytearray((FIXTURES / "kcore-6.1.core").read_bytes())
    i = blob.index(b"VMCOREINFO\0")
    blob[i:i + 10] = b"XMCOREINFO"  # hide the note
    path = tmp_path / "old-kcore"
    path.write_bytes(bytes(blob))
    desc = b"OSRELEASE=4.14.0\nPAGESIZE=4096\n"
    note = struct.pack("<III", 11, len(desc), 0) + b"VMCOREINFO\0\0" + desc
    phys = 0x1000  # inside the fixture's first RAM segment
    sysfs = tmp_path / "vmcoreinfo"
    sysfs.write_text(f"{phys:x} {len(note):x}\n")
    monkeypatch.setattr(elfcore, "VMCOREINFO_SYSFS", str(sysfs))
    monkeypatch.setattr(elfcore.ElfCore, "is_live", property(lambda self: True))
    real_read = elfcore.ElfCore.read

    def fake_read(self, addr, size, physical=False):
        if physical and addr == phys:
            return note[:size]
        return real_read(self, addr, size, physical)

    monkeypatch.setattr(elfcore.ElfCore, "read", fake_read)
    with open_core(path) as core:
        assert core.vmcoreinfo_source == str(sysfs)
        assert core.release == "4.14.0"
