# SPDX-License-Identifier: LGPL-2.1-or-later
"""SIGINT held back while drgn runs plugin hooks (which ignore what they raise)."""

from __future__ import annotations

import signal
import threading

import pytest

from kcoretool._interrupts import deferred_sigint


def _spin() -> None:
    for _ in range(1000):  # the eval loop checks for signals here
        pass


def _interrupt_this_thread() -> None:
    # At this thread, not the process: in a process with other threads
    # (drgn's OpenMP workers, once DWARF was loaded in-process) the kernel
    # may hand a process-wide SIGINT to one of them, late.
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)


def test_sigint_waits_for_the_block_then_is_raised():
    assert threading.current_thread() is threading.main_thread()
    # Python's own handler, whatever an earlier in-process CLI run left
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with deferred_sigint():
                _interrupt_this_thread()
                _spin()
                reached.append("end of block")
        assert reached == ["end of block"]
        # the mask is restored: a later SIGINT is raised at once
        with pytest.raises(KeyboardInterrupt):
            _interrupt_this_thread()
            _spin()
    finally:
        signal.signal(signal.SIGINT, old)
