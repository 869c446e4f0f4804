"""The live user reader raced against munmap, mmap, MAP_FIXED and mremap
as 5.10, 6.1, 6.12 and 7.x perform them, step by step (issue 27).

Each case sets a region up, then runs a kernel operation one atomic step
at a time interleaved with the reader's own accesses (every guard read,
VMA lookup and physical read lets the kernel take ``stride`` steps, from
the ``start``-th access on), for every start and a few strides.  A read
may come back with the right bytes or ``raced`` -- never with the bytes of
a freed frame or of another mapping, and never with one VMA's pages from
two generations.  The ablation tests drop one validation rule each and
show an interleaving that then returns wrong bytes: every rule is needed.
"""

from __future__ import annotations

import io
import itertools
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from kcoretool.kernel.task import TaskReader
from kcoretool.reader import uread
from kcoretool.reader.pagetable import PageTableWalker
from kcoretool.reader.uread import UserReader
from tests.synth.mmsim import KERNELS, MM, PAGE, VMA_LOCK, SimMm, run, untag

A = 0x7F0000100000
B = 0x7F0000200000
C = 0x7F0000300000  # mapped, untouched, before every case
N = 3  # pages per region


class _Racer:
    """Lets the kernel script run at the reader's accesses: ``stride`` steps
    at each access from the ``start``-th on, or with ``gap``, ``stride``
    steps at the ``start``-th access and all the rest ``gap`` accesses
    later.  Records what was mapped at every moment of the read."""

    def __init__(self, sim: SimMm, script: Iterator[None], start: int, stride: int, gap: int = 0) -> None:
        self.sim, self.script, self.start, self.stride, self.gap, self.n = sim, script, start, stride, gap, 0
        self.seen: set = set()  # the read starts with the first access, after its steps

    def tick(self) -> None:
        self.n += 1
        if self.gap:
            steps = self.stride if self.n == self.start else (1 << 30 if self.n == self.start + self.gap else 0)
        else:
            steps = self.stride if self.n >= self.start else 0
        for _ in range(steps):
            if next(self.script, StopIteration) is StopIteration:
                break
        self.seen |= self.sim.mapped()


class _Live:
    """uread.LiveMm over a SimMm; ``tlb_gen=False`` / ``lock_rules=False``
    drop a rule (ablations)."""

    def __init__(self, sim: SimMm, racer: _Racer, tlb_gen: bool = True, lock_rules: bool = True) -> None:
        self.sim, self.racer, self.tlb_gen, self.lock_rules = sim, racer, tlb_gen, lock_rules
        self._rules = types.SimpleNamespace(layout=types.SimpleNamespace(vma_lock=VMA_LOCK[sim.kernel]))

    def guard(self) -> Any:
        self.racer.tick()
        return self.sim.guard(self.tlb_gen)

    def lookup(self, addr: int) -> Any:
        self.racer.tick()
        return self.sim.lookup(addr)

    def unusable(self, vma: Any, guard: Any) -> Optional[str]:
        if not self.lock_rules:
            return None
        return TaskReader.vma_unusable(self._rules, vma, MM, guard)  # type: ignore[arg-type]


class _NoVmas:
    """Live reads look VMAs up afresh: the index of a dump is never asked."""

    def vma_range(self, addr: int) -> Tuple[Optional[Any], int, int]:
        raise AssertionError("a live read used the dump's VMA index")


def read_once(sim: SimMm, script: Iterator[None], start: int, stride: int, lo: int, size: int, gap: int = 0,
              **ablate: bool) -> Tuple[Any, bytes, set]:
    racer = _Racer(sim, script, start, stride, gap)

    def read_phys(addr: int, n: int) -> bytes:
        racer.tick()
        return sim.m.read(addr, n)

    r = UserReader(_NoVmas(), PageTableWalker(read_phys, sim.root), read_phys, live=_Live(sim, racer, **ablate),
                   missing_state="unreadable")
    out = io.BytesIO()
    rep = r.read(lo, size, out)
    return rep, out.getvalue(), racer.seen


def wrong_pages(seen: set, rep: Any, data: bytes) -> List[str]:
    """Data pages that are not the bytes of what the reader says they are:
    poison (a freed frame), or a tag whose generation was not mapped at the
    VMA start the page is attributed to at any moment of the read, or the
    wrong page of it; and one VMA's pages from two generations."""
    bad = []
    gens: Dict[int, set] = {}
    for run_ in rep.runs:
        if run_.state != "data":
            continue
        for va in range(run_.vaddr, run_.vaddr + run_.size, PAGE):
            page = data[va - rep.addr:va - rep.addr + PAGE]
            if page != page[:8] * (PAGE // 8):
                bad.append(f"{va:#x}: torn page")
                continue
            try:
                t = untag(int.from_bytes(page[:8], "little"))
            except ValueError as e:
                bad.append(f"{va:#x} in VMA {run_.area:#x}: {e}")
                continue
            if t is None:
                continue  # a freshly faulted, still zero page: its content then
            gen, index = t
            if (gen, run_.area) not in seen or index != (va - run_.area) // PAGE:
                bad.append(f"{va:#x} in VMA {run_.area:#x}: page {index} of generation {gen}")
            gens.setdefault(run_.area, set()).add(gen)
    bad += [f"VMA {a:#x}: generations {sorted(g)} in one read" for a, g in gens.items() if len(g) > 1]
    return bad


def _alike(s: SimMm) -> Iterator[None]:
    """munmap, then mmap again alike: same address, size, struct, anon_vma and frames."""
    return itertools.chain(s.munmap(A), s.mmap(A, N, 2))


def _reused_elsewhere(s: SimMm) -> Iterator[None]:
    """The frames go to another mapping, then back to one alike at A."""
    return itertools.chain(s.munmap(A), s.mmap(B, N, 2), s.munmap(B), s.mmap(A, N, 3))


def _dontneed(s: SimMm) -> Iterator[None]:
    """MADV_DONTNEED at A, the frames used at C (DONTNEED there too), A
    faulted in again with the same frames: the VMAs never change."""
    return itertools.chain(s.madv_dontneed(A), s.refault(C, 9), s.madv_dontneed(C), s.refault(A, 1))


def _fixed(s: SimMm) -> Iterator[None]:
    """mmap(MAP_FIXED) of a new region over the old one."""
    return s.mmap_fixed(A, N, 2)


def _mremap(s: SimMm) -> Iterator[None]:
    """The region moves to B, and a new one is mapped where it was."""
    return itertools.chain(s.mremap_move(A, B), s.mmap(A, N, 2))


SCENARIOS: Dict[str, Callable[[SimMm], Iterator[None]]] = {
    "munmap+mmap alike": _alike, "frames reused elsewhere": _reused_elsewhere, "MADV_DONTNEED": _dontneed,
    "MAP_FIXED": _fixed,
    "mremap move": _mremap,
}
STARTS = range(1, 80)
STRIDES = (1, 3)
#: two bursts: (stride, gap) -- part of an operation before a reader step,
#: the rest some steps later (a freed frame read, then mapped again alike)
BURSTS = tuple(itertools.product((2, 5, 9, 14, 20, 28, 40), (1, 3, 8, 1000)))
BURST_STARTS = range(1, 40)


def _setup(kernel: str) -> SimMm:
    s = SimMm(kernel)
    run(s.mmap(A, N, 1))
    run(s.mmap(C, N, 9, touch=0))
    return s


def _sweep(kernel: str, scenario: str, at: int, first: bool = False,
           **ablate: bool) -> Tuple[Dict[str, int], List[str]]:
    """Every interleaving of the scenario with one read at ``at``: the
    outcomes counted, the wrong pages listed (``first``: stop at one)."""
    outcomes: Dict[str, int] = {}
    wrong: List[str] = []
    cases = [(start, stride, 0) for start, stride in itertools.product(STARTS, STRIDES)]
    cases += [(start, stride, gap) for start, (stride, gap) in itertools.product(BURST_STARTS, BURSTS)]
    for start, stride, gap in cases:
        s = _setup(kernel)
        rep, data, seen = read_once(s, SCENARIOS[scenario](s), start, stride, at, N * PAGE, gap, **ablate)
        states = {r.state for r in rep.runs}
        key = "raced" if "raced" in states else ("data" if "data" in states else "other")
        outcomes[key] = outcomes.get(key, 0) + 1
        wrong += [f"start {start} stride {stride} gap {gap}: {w}" for w in wrong_pages(seen, rep, data)]
        if first and wrong:
            break
    return outcomes, wrong


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(uread, "BACKOFF", ())


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_interleaving_is_right_bytes_or_raced(kernel, scenario):
    outcomes, wrong = _sweep(kernel, scenario, A)
    assert not wrong, "\n".join(wrong[:10])
    assert outcomes.get("data", 0) > len(STARTS), outcomes  # many reads still succeed


@pytest.mark.parametrize("kernel", KERNELS)
def test_mremap_destination_is_right_bytes_or_raced(kernel):
    outcomes, wrong = _sweep(kernel, "mremap move", B)
    assert not wrong, "\n".join(wrong[:10])
    assert outcomes.get("data", 0) > 0, outcomes


def test_sim_ends_as_scripted():
    for kernel in KERNELS:
        s = _setup(kernel)
        run(_mremap(s))
        assert sorted(s.tree) == [A, B, C] and s.guard() is not None
        rep, data, seen = read_once(s, iter(()), 1, 1, B, N * PAGE)
        assert [r.state for r in rep.runs] == ["data"] * N or [r.state for r in rep.runs] == ["data"]
        assert not wrong_pages(seen, rep, data) and seen == {(1, B), (2, A), (9, C)}
        assert int.from_bytes(data[PAGE:PAGE + 8], "little") == (0x5A5A << 48 | 1 << 16 | 1)


# -- ablations: each rule, dropped, lets a wrong page through ------------------------


@pytest.mark.parametrize("kernel", KERNELS)
def test_without_tlb_gen_a_reused_frame_gets_through(kernel):
    """MADV_DONTNEED zaps under the read lock (no sequence count moves, no
    VMA changes): only the TLB generation sees a frame freed and reused
    between the PTE read and the page read."""
    _, wrong = _sweep(kernel, "MADV_DONTNEED", A, first=True, tlb_gen=False)
    assert wrong


def test_without_tlb_gen_munmap_gets_through_on_6_1():
    """6.1 has no sequence count at all: munmap, the frames used elsewhere,
    mmap alike again -- only the TLB generation moved."""
    _, wrong = _sweep("6.1", "frames reused elsewhere", A, first=True, tlb_gen=False)
    assert wrong


def test_without_the_vma_lock_rules_map_fixed_gets_through():
    """6.12's __mmap_region() stores the new VMA before zapping the old
    PTEs; only its write lock (vm_lock_seq == mm_lock_seq) says so."""
    _, wrong = _sweep("6.12", "MAP_FIXED", A, first=True, lock_rules=False)
    assert wrong
