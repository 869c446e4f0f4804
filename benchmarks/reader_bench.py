"""Reader throughput against a baseline measured in the same run.

    python benchmarks/reader_bench.py offline VMCORE VMLINUX
        extract every area of a vmcore through the page tables, vs reading
        the vmcore file sequentially (goal: ratio >= 0.3)
    python benchmarks/reader_bench.py live VMLINUX [MiB]
        (as root on the live kernel, e.g. in the lab guest) make a MiB-sized
        vmalloc area (default 64: a BPF array map, whose memory the kernel
        vmallocs), read it through the page tables, vs dd of the same range
        of /proc/kcore (goal: ratio >= 0.5).  In the lab:
        python -m tests.lab boot 6.12 -- $(which python3) benchmarks/reader_bench.py live VMLINUX
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kcoretool.api import open_kernel


class Count:
    """A sink that only counts, so disk speed is not measured."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        return len(data)


def evict(path: str) -> None:
    """Drop the file's pages from the page cache (clean pages, no root)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def sequential(path: str, cold: bool) -> float:
    """Bytes per second reading the whole file front to back in 1 MiB reads."""
    if cold:
        evict(path)
    else:
        sequential(path, cold=True)  # warm the cache
    t0 = time.perf_counter()
    n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            n += len(b)
    return n / (time.perf_counter() - t0)


def extract_all(vmcore: str, vmlinux: str, cold: bool, repeat: int = 5) -> tuple:
    """(areas, bytes, best bytes/s) of extracting every area; the model is
    built first (debug-info load and the walk are not reader throughput)."""
    best = 0.0
    for _ in range(repeat):
        k = open_kernel(vmcore, vmlinux)
        model = k.vmalloc()
        areas = [a for a in model.areas if a.kind != "ioremap"]
        if cold:
            evict(vmcore)
        reader = k.reader()
        sink = Count()
        t0 = time.perf_counter()
        for a in areas:
            reader.read(a.start, a.end - a.start, sink)
        best = max(best, sink.n / (time.perf_counter() - t0))
        k.core.close()
    return len(areas), sink.n, best


def offline(vmcore: str, vmlinux: str) -> None:
    for cold in (True, False):
        label = "cold (file evicted from the page cache)" if cold else "warm (file in the page cache)"
        n_areas, n_bytes, ours = extract_all(vmcore, vmlinux, cold)
        base = sequential(vmcore, cold)
        print(f"{label}:")
        print(f"  extract {n_areas} areas ({n_bytes >> 20} MiB): {ours / 2**20:9.1f} MiB/s")
        print(f"  sequential read of {os.path.basename(vmcore)}: {base / 2**20:9.1f} MiB/s (baseline)")
        print(f"  ratio {ours / base:.2f} (goal >= 0.3)")


def bpf_array_map(size: int) -> int:
    """Create a BPF array map of ``size`` bytes (vmalloc'd by the kernel's
    bpf_map_area_alloc()); returns its fd, which keeps it alive."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(128)
    # union bpf_attr, BPF_MAP_CREATE: map_type, key_size, value_size, max_entries
    import struct

    struct.pack_into("<IIII", attr, 0, 2, 4, 4096, size // 4096)  # BPF_MAP_TYPE_ARRAY
    fd = libc.syscall(321, 0, attr, 128)  # __NR_bpf, BPF_MAP_CREATE
    if fd < 0:
        raise OSError(ctypes.get_errno(), "bpf(BPF_MAP_CREATE)")
    return fd


def live(vmlinux: str, mib: int) -> None:
    size = mib << 20
    fd = bpf_array_map(size)
    k = open_kernel("/proc/kcore", vmlinux)
    area = max((a for a in k.vmalloc().areas if a.kind == "vmalloc"), key=lambda a: a.end - a.start)
    if area.end - area.start < size:
        raise SystemExit(f"no vmalloc area of {mib} MiB found (largest {area.end - area.start} bytes)")
    addr = area.start
    print(f"area {area.start:#x}-{area.end:#x} {area.vm.caller_symbol if area.vm else area.kind}")
    t0 = time.perf_counter()
    _, report = k.read(addr, size, Count())
    print(f"pages: {report.pages_by_state()}")
    ours = size / (time.perf_counter() - t0)
    seg = k.core.find_segment(addr)
    skip = (seg.offset + (addr - seg.vaddr)) // 4096
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/proc/kcore", "of=/dev/null", "bs=4096", f"skip={skip}", f"count={size // 4096}"],
                   check=True, capture_output=True)
    base = size / (time.perf_counter() - t0)
    print(f"page-table reader: {ours / 2**20:8.1f} MiB/s")
    print(f"dd /proc/kcore:    {base / 2**20:8.1f} MiB/s (baseline)")
    print(f"ratio {ours / base:.2f} (goal >= 0.5)")
    os.close(fd)


if __name__ == "__main__":
    if sys.argv[1:2] == ["offline"]:
        offline(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["live"]:
        live(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 64)
    else:
        print(__doc__)
        sys.exit(2)
