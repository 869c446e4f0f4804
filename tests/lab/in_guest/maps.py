"""A guest process with known mappings, kept alive while the lab dumps and
reads it (python -m tests.lab.in_guest.maps OUT.json [--churn SECONDS]).

Standard library only (ctypes mmap/munmap/mprotect/madvise/prctl).  It maps:

- ``tagged``: 16 private anonymous pages, every 8-byte word tagged
  ``TAG_MAGIC << 48 | region << 40 | page << 12 | offset``;
- ``hole``: 8 tagged pages with pages 3-4 munmapped (two VMAs);
- ``split``: 6 tagged pages with pages 2-3 mprotected read-only (three VMAs);
- ``shared``: 4 tagged pages MAP_SHARED|MAP_ANONYMOUS (``/dev/zero (deleted)``);
- ``thp``: 4 MiB, 2 MiB-aligned, MADV_HUGEPAGE, tagged (THP where the kernel gives one);
- ``named``: 2 tagged pages named with PR_SET_VMA_ANON_NAME (the result is
  recorded: Debian's 6.1 and 6.12 lack CONFIG_ANON_VMA_NAME, so EINVAL);
- ``zero``: 2 pages only read (the shared zero page);
- ``untouched``: 4 pages never touched (not present);
- ``file``: this Python's executable mapped read-only, every page touched;
- ``tmpfs``: a 3-page /tmp file mapped MAP_SHARED and tagged (shmem page cache).

Then it writes OUT.json (pid and every region's address) atomically and
sleeps until killed.  ``--churn S`` instead mmaps, tags and munmaps regions
in a loop for S seconds; ``--churn-stress S`` does it faster, with more
regions, and also moves (mremap), shrinks, replaces (MAP_FIXED) and
refills (MADV_DONTNEED) them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import struct
import sys
import time

PAGE = 4096
TAG_MAGIC = 0x4D50  # "MP"
PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MADV_DONTNEED, MADV_HUGEPAGE = 4, 14
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
PR_SET_VMA, PR_SET_VMA_ANON_NAME = 0x53564D41, 0

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p)


def tag(region: int, page: int, off: int) -> int:
    return TAG_MAGIC << 48 | (region & 0xFF) << 40 | (page & 0xFFFFFFF) << 12 | off


def page_bytes(region: int, page: int) -> bytes:
    return struct.pack("<512Q", *(tag(region, page, off) for off in range(0, PAGE, 8)))


def mmap_(length: int, prot: int = PROT_READ | PROT_WRITE, flags: int = MAP_PRIVATE | MAP_ANONYMOUS,
          fd: int = -1, addr: int = 0) -> int:
    p = libc.mmap(addr, length, prot, flags, fd, 0)
    if p in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), f"mmap {length}")
    return int(p)


def fill(addr: int, region: int, pages: int, first_page: int = 0) -> None:
    for i in range(pages):
        ctypes.memmove(addr + i * PAGE, page_bytes(region, first_page + i), PAGE)


def setup() -> dict:
    out: dict = {"pid": os.getpid(), "page_size": PAGE, "tag_magic": TAG_MAGIC, "regions": {}}
    regions = out["regions"]

    a = mmap_(16 * PAGE)
    fill(a, 1, 16)
    regions["tagged"] = {"addr": a, "size": 16 * PAGE, "region": 1}

    a = mmap_(8 * PAGE)
    fill(a, 2, 8)
    regions["hole"] = {"addr": a, "size": 8 * PAGE, "region": 2, "hole": [a + 3 * PAGE, a + 5 * PAGE]}

    a = mmap_(6 * PAGE)
    fill(a, 3, 6)
    libc.mprotect(a + 2 * PAGE, 2 * PAGE, PROT_READ)
    regions["split"] = {"addr": a, "size": 6 * PAGE, "region": 3, "readonly": [a + 2 * PAGE, a + 4 * PAGE]}

    a = mmap_(4 * PAGE, flags=MAP_SHARED | MAP_ANONYMOUS)
    fill(a, 4, 4)
    regions["shared"] = {"addr": a, "size": 4 * PAGE, "region": 4}

    big = mmap_(8 << 20)
    a = (big + (2 << 20) - 1) & ~((2 << 20) - 1)
    libc.madvise(a, 4 << 20, MADV_HUGEPAGE)
    fill(a, 5, 1024)
    regions["thp"] = {"addr": a, "size": 4 << 20, "region": 5}

    a = mmap_(2 * PAGE)
    fill(a, 6, 2)
    name = b"kct-named"
    name_ptr = ctypes.cast(ctypes.c_char_p(name), ctypes.c_void_p).value
    rc = libc.prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, a, 2 * PAGE, name_ptr)
    regions["named"] = {"addr": a, "size": 2 * PAGE, "region": 6, "prctl_rc": rc,
                        "prctl_errno": ctypes.get_errno() if rc else 0}

    a = mmap_(2 * PAGE)
    _ = ctypes.string_at(a, 1), ctypes.string_at(a + PAGE, 1)  # read faults: the zero page
    regions["zero"] = {"addr": a, "size": 2 * PAGE}

    a = mmap_(4 * PAGE)
    regions["untouched"] = {"addr": a, "size": 4 * PAGE}

    path = os.path.realpath(sys.executable)
    fd = os.open(path, os.O_RDONLY)
    size = min(os.fstat(fd).st_size, 64 * PAGE) & ~(PAGE - 1)
    a = mmap_(size, prot=PROT_READ, flags=MAP_PRIVATE, fd=fd)
    os.close(fd)
    for i in range(size // PAGE):
        ctypes.string_at(a + i * PAGE, 1)
    regions["file"] = {"addr": a, "size": size, "path": path}

    tmp = "/tmp/kct-maps-shm"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, 3 * PAGE)
    a = mmap_(3 * PAGE, flags=MAP_SHARED, fd=fd)
    os.close(fd)
    fill(a, 7, 3)
    regions["tmpfs"] = {"addr": a, "size": 3 * PAGE, "region": 7, "path": tmp}
    # The hole is punched last, so no later mmap fills it.
    libc.munmap(regions["hole"]["hole"][0], 2 * PAGE)
    return out


class _Region:
    """One churn region: ``pages`` tagged read-write pages at ``rw`` between
    two PROT_NONE guard pages, so its VMA never merges with another
    region's (every ``rw-p`` VMA of the churn is exactly one region) -- also
    after mremap.  It unmaps only what it owns (its pages and guards): holes
    that moves and shrinks leave may hold other regions by then."""

    def __init__(self, pages: int, gen: int) -> None:
        base = mmap_((pages + 2) * PAGE, prot=PROT_NONE)
        self.rw, self.pages = base + PAGE, pages
        self.guards = [base, base + (pages + 1) * PAGE]
        libc.mprotect(self.rw, pages * PAGE, PROT_READ | PROT_WRITE)
        self.tag(gen)

    def tag(self, gen: int) -> None:
        fill(self.rw, 0x80 | (gen & 0x7F), self.pages, first_page=gen << 4)

    def unmap(self) -> None:
        libc.munmap(self.rw, self.pages * PAGE)
        for g in self.guards:
            libc.munmap(g, PAGE)

    def move(self) -> None:
        """mremap(MREMAP_MAYMOVE|MREMAP_FIXED) between two new guards."""
        base = mmap_((self.pages + 2) * PAGE, prot=PROT_NONE)
        p = libc.mremap(self.rw, self.pages * PAGE, self.pages * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, base + PAGE)
        if p in (None, ctypes.c_void_p(-1).value):
            libc.munmap(base, (self.pages + 2) * PAGE)
            return
        self.rw = base + PAGE
        self.guards += [base, base + (self.pages + 1) * PAGE]

    def shrink(self) -> None:
        """mremap() to one page fewer, in place."""
        if self.pages > 1 and libc.mremap(self.rw, self.pages * PAGE, (self.pages - 1) * PAGE, 0, None) == self.rw:
            self.pages -= 1

    def replace(self, gen: int) -> None:
        """mmap(MAP_FIXED) of a new region over this one's pages."""
        mmap_(self.pages * PAGE, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, addr=self.rw)
        self.tag(gen)

    def refill(self, gen: int) -> None:
        """madvise(MADV_DONTNEED), then new tags: same VMA, new frames."""
        libc.madvise(self.rw, self.pages * PAGE, MADV_DONTNEED)
        self.tag(gen)


def churn(seconds: float, out_path: str, stress: bool = False) -> None:
    """mmap, tag, munmap in a loop: a reader must never attribute a page to
    the wrong VMA (each region's tags carry its generation in the page
    field's upper bits and the page's index in its low 4 bits).  Stress:
    48 regions live instead of 16, no pause, and a quarter of the steps move,
    shrink, replace or refill a live region instead."""
    import random

    rnd = random.Random(27)
    deadline = time.monotonic() + seconds
    gen = 0
    live: list = []
    keep = 48 if stress else 16
    _write(out_path, {"pid": os.getpid(), "churn": True, "stress": stress, "tag_magic": TAG_MAGIC})
    while time.monotonic() < deadline:
        gen += 1
        if stress and len(live) >= keep and rnd.random() < 0.25:
            r = rnd.choice(live)
            op = rnd.randrange(4)
            if op == 0:
                r.move()
            elif op == 1:
                r.shrink()
            elif op == 2:
                r.replace(gen)
            else:
                r.refill(gen)
            continue
        # the region munmapped 16 generations later never has this size, so a
        # new region does not exactly refill its hole: before 6.4 nothing
        # (no mm_lock_seq) told such a refill from no change at all
        live.append(_Region(1 + (gen + gen // 16) % 8, gen))
        if len(live) > keep:
            live.pop(0).unmap()
        if not stress:
            time.sleep(0.002)  # a busy program, not a livelock: readers get windows


def _write(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def main() -> None:
    out_path = sys.argv[1]
    if len(sys.argv) > 3 and sys.argv[2] in ("--churn", "--churn-stress"):
        churn(float(sys.argv[3]), out_path, stress=sys.argv[2] == "--churn-stress")
        return
    info = setup()
    _write(out_path, info)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
