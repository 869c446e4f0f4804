"""pytest fixtures for the real-kernel lab (API: tests/lab/README.md).

Enable with ``pytest_plugins = ["tests.lab.pytest_plugin"]`` in
tests/conftest.py.  The ``lab`` fixture is session scoped and parametrized over
the kernels, so each kernel boots once per session and all of its tests run
against that boot.  Where the lab cannot run it skips with a one-line
reason, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from typing import Any, Iterator

import pytest

from .config import KERNELS, LabError, LabUnavailable, cache_lock, check_environment
from .lab import host_kcoretool  # noqa: F401  (re-exported for tests)

# KCORETOOL_LAB_KERNELS=6.12 limits the session to some kernels.
LAB_KERNELS = [k for k in os.environ.get("KCORETOOL_LAB_KERNELS", ",".join(KERNELS)).split(",") if k]


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _ci():
        pytest.fail(f"lab cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"lab unavailable: {reason}")


# Kernels the selected tests will boot, in order (filled at collection).
_needed: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Anything that uses the lab fixtures is a lab test, marked or not.
    for item in items:
        if {"lab", "lab_guest"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)


# A lab test's id names its kernel: test_x[linux6.12] or test_x[linux6.12-elf].
_KERNEL_ID = re.compile(r"\[(?:[^\]]*-)?linux(\d+\.\d+)(?=[-\]])")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist's ``--dist loadgroup`` (tests/run.sh): each kernel's
    lab tests are one unit of work, run by one worker, so each kernel boots
    once; every other test is a unit of its own.  (xdist's own loadgroup,
    which reads ``xdist_group`` marks, does not group under pytest 9.)  The
    biggest units go first: the kernels' tiers, then the rest fills in."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class KernelScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            m = _KERNEL_ID.search(nodeid)
            return f"lab-{m.group(1)}" if m else nodeid

    return KernelScheduling(config, log)


def pytest_collection_finish(session: pytest.Session) -> None:
    # After -k/-m deselection: which kernels will really be booted.
    _needed.clear()
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        k = callspec.params.get("lab") if callspec else None
        if k and k not in _needed:
            _needed.append(k)


@pytest.fixture(scope="session")
def lab_environment() -> None:
    """Skip (or fail under CI=true) when the host cannot run the lab."""
    try:
        check_environment()
    except LabUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="session", params=LAB_KERNELS, ids=[f"linux{k}" for k in LAB_KERNELS])
def lab(request: pytest.FixtureRequest, lab_environment: None) -> Iterator[Any]:
    """A booted kernel with the test module loaded and a snapshot taken."""

    # Several worktrees on one machine (2 cores): KCORETOOL_LAB_LOCK=1 makes
    # their guests take turns instead of starving each other under TCG.
    with contextlib.ExitStack() as stack:
        if os.environ.get("KCORETOOL_LAB_LOCK"):
            stack.enter_context(cache_lock("guest", timeout=3600))
        yield from _booted(request)


def _booted(request: pytest.FixtureRequest) -> Iterator[Any]:
    from .lab import start

    try:
        # Prepare the next kernel (download/extract when cold) while this one runs.
        lk = start(request.param, then_prepare=_needed)
    except LabUnavailable as exc:
        _unavailable(str(exc))
        raise  # not reached
    except LabError as exc:
        pytest.fail(f"lab {request.param}: {exc}", pytrace=False)
        raise
    try:
        yield lk
    finally:
        lk.close()


@pytest.fixture(scope="session")
def lab_panicked(lab: Any) -> Any:
    """A lab kernel's second, small guest with kcoretool_hide.ko's planted
    pages, crashed and dumped three ways (tests.lab.lab.Panicked)."""
    from .lab import panicked

    try:
        return panicked(lab)
    except LabError as exc:
        pytest.fail(f"lab {lab.kernel} (panicked guest): {exc}", pytrace=False)
        raise


@pytest.fixture(scope="session")
def lab_live_debuginfo(lab: Any) -> Any:
    """One in-guest run of tests/lab/in_guest/debuginfo.py on /proc/kcore:
    every command of tests/lab/test_btf.py's list under DWARF and under BTF.
    The parity test diffs the pairs; the ``vmalloc check`` test reads its
    result from here instead of a third in-guest check (~30 s under TCG)."""
    import sys

    from .test_btf import commands

    rc, out, err = lab.run([sys.executable, "-m", "tests.lab.in_guest.debuginfo", "/proc/kcore", str(lab.vmlinux),
                            json.dumps(commands(lab, live=True))], timeout=1500)
    assert rc == 0, err[-2000:]
    return json.loads(out)


@pytest.fixture(scope="session")
def lab_guest(lab: Any) -> Any:
    """Alias of ``lab``."""
    return lab


def kcoretool_json(runner: Any, *args: str, timeout: float = 300) -> Any:
    """Run a kcoretool command with ``--json`` through runner (a LabKernel's
    ``kcoretool`` or :func:`host_kcoretool`) and parse its output."""
    rc, out, err = runner("--json", *args, timeout=timeout)
    if rc != 0:
        raise AssertionError(f"kcoretool --json {' '.join(args)} exited {rc}: {err.strip()[-500:]}")
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"kcoretool --json {' '.join(args)}: bad JSON ({exc}): {out[:300]!r}") from None
