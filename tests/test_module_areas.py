"""The lab's judge of a live read of the test module's areas
(tests.module_areas.judge_live_pages), on the situations a lazy area meets
while the guest runs: still lazy, purged, its start reused by a busy or a
lazy area, changed during the read."""

from __future__ import annotations

from tests.module_areas import PAGE, judge_live_pages

ADDR = 0xFFFFC90000100000


def lazy_area(states, view_before, view_after=None, zero=True, area=ADDR):
    return {"name": "lazy_8p", "kind": "lazy_freed", "addr": ADDR, "size": 8 * PAGE,
            "kernel_view": [view_before, view_before if view_after is None else view_after],
            "pages": [{"index": i, "state": s, "own_tag": False, "zero": zero if s != "data" else False,
                       "area": area} for i, s in enumerate(states)]}


OURS = ["unpurged", ADDR, ADDR + 9 * PAGE]


def test_the_lazy_area_itself_reads_as_lazy_zeros() -> None:
    assert judge_live_pages([lazy_area(["lazy"] * 8, OURS)]) == []
    bad = judge_live_pages([lazy_area(["data"] + ["lazy"] * 7, OURS)])
    assert [(name, i, state) for name, i, state, *_ in bad] == [("lazy_8p", 0, "data")]


def test_a_busy_area_that_reused_the_start() -> None:
    busy = ["vm_struct", ADDR, ADDR + 5 * PAGE]  # 4 pages + guard
    assert judge_live_pages([lazy_area(["data"] * 4 + ["guard"] + ["hole"] * 3, busy)]) == []
    assert judge_live_pages([lazy_area(["lazy"] * 8, busy)]) != []


def test_a_lazy_area_that_reused_the_start() -> None:
    small = ["unpurged", ADDR, ADDR + 5 * PAGE]
    assert judge_live_pages([lazy_area(["lazy"] * 5 + ["hole"] * 3, small)]) == []
    assert judge_live_pages([lazy_area(["data"] * 4 + ["guard"] + ["hole"] * 3, small)]) != []


def test_purged_or_changing_is_not_judged() -> None:
    assert judge_live_pages([lazy_area(["hole"] * 8, None)]) == []
    assert judge_live_pages([lazy_area(["data"] * 8, OURS, ["vm_struct", ADDR, ADDR + 9 * PAGE])]) == []
    # purged, and a new area starting elsewhere covers these pages
    assert judge_live_pages([lazy_area(["data"] * 8, None, area=ADDR - PAGE)]) == []
    # purged, yet read as data of an area starting here: the tool's view and the kernel's disagree
    assert judge_live_pages([lazy_area(["data"] * 8, None)]) != []
