# SPDX-License-Identifier: LGPL-2.1-or-later
"""Output files are whole or absent, even when Ctrl-C lands while one is
being created (the window the Ctrl-C campaign of test_hostile can hit)."""

from __future__ import annotations

import builtins
import os

import pytest

from kcoretool.cli import outfile
from kcoretool.cli.outfile import OutputDir, OutputFile


class Interrupted(BaseException):
    pass


def _open_then_interrupt(monkeypatch):
    """``open`` that makes the file, then is interrupted before it returns."""
    real = builtins.open

    def fake(path, mode="r", *a, **kw):
        f = real(path, mode, *a, **kw)
        f.close()
        raise Interrupted()

    monkeypatch.setattr(outfile, "open", fake, raising=False)


def test_interrupt_while_creating_leaves_nothing(tmp_path, monkeypatch):
    _open_then_interrupt(monkeypatch)
    with pytest.raises(Interrupted):
        with OutputFile(str(tmp_path / "out.bin")) as f:
            f.write(b"x")
    assert os.listdir(tmp_path) == []


def test_interrupt_while_creating_in_a_directory_leaves_nothing(tmp_path, monkeypatch):
    d = tmp_path / "x"
    with pytest.raises(Interrupted):
        with OutputDir(str(d)) as out:
            with out.file("a.bin") as f:
                f.write(b"a")
            _open_then_interrupt(monkeypatch)
            with out.file("b.bin") as f:
                f.write(b"b")
    assert not d.exists()
    assert os.listdir(tmp_path) == []


def test_whole_file_appears(tmp_path):
    with OutputFile(str(tmp_path / "out.bin")) as f:
        f.write(b"data")
    assert os.listdir(tmp_path) == ["out.bin"]
    assert (tmp_path / "out.bin").read_bytes() == b"data"
