# SPDX-License-Identifier: LGPL-2.1-or-later
"""SIGINT held back while drgn runs plugin hooks (which ignore what they raise)."""

from __future__ import annotations

import os
import signal

import pytest

from kcoretool._interrupts import deferred_sigint


def _spin() -> None:
    for _ in range(1000):  # the eval loop checks for signals here
        pass


def test_sigint_waits_for_the_block_then_is_raised():
    # Python's own handler, whatever an earlier in-process CLI run left
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with deferred_sigint():
                os.kill(os.getpid(), signal.SIGINT)
                _spin()
                reached.append("end of block")
        assert reached == ["end of block"]
        # the mask is restored: a later SIGINT is raised at once
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            _spin()
    finally:
        signal.signal(signal.SIGINT, old)
