# SPDX-License-Identifier: LGPL-2.1-or-later
"""Output files are whole or absent, even when Ctrl-C lands while one is
being created (the window the Ctrl-C campaign of test_hostile can hit)."""

from __future__ import annotations

import os

import pytest

from kcoretool import _outfile as outfile
from kcoretool._outfile import OutputDir, OutputFile


class Interrupted(BaseException):
    pass


def _open_then_interrupt(monkeypatch):
    """Creating the temporary makes the file, then is interrupted before it returns."""
    real = outfile._create

    def fake(path):
        os.close(real(path))
        raise Interrupted()

    monkeypatch.setattr(outfile, "_create", fake)


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


def _interrupt_on_entry(monkeypatch, cls):
    """Ctrl-C on the first line of ``cls.__exit__`` (the eval loop checks
    for signals on entering a function): its body never runs."""
    def exit_(self, *exc):
        raise Interrupted()

    monkeypatch.setattr(cls, "__exit__", exit_)


def test_interrupt_on_entering_a_files_exit(tmp_path, monkeypatch):
    d = tmp_path / "x"
    with pytest.raises(Interrupted):
        with OutputDir(str(d)) as out:
            with out.file("a.bin") as f:
                f.write(b"a")
            _interrupt_on_entry(monkeypatch, outfile._DirFile)
            with out.file("b.bin") as f:
                f.write(b"b")
    # the directory's own __exit__ removed a.bin and b.bin's temporary
    assert os.listdir(tmp_path) == []


def test_interrupt_on_entering_the_directorys_exit(tmp_path, monkeypatch):
    d = tmp_path / "x"
    _interrupt_on_entry(monkeypatch, OutputDir)  # looked up as the with block begins
    with pytest.raises(Interrupted):
        with OutputDir(str(d)) as out:
            with out.file("a.bin") as f:
                f.write(b"a")
            with out.file("manifest.json") as f:
                f.write(b"{}")
    # the files are complete but not yet renamed into place: only temporaries
    assert sorted(os.listdir(d)) == [f".a.bin.kcoretool-{os.getpid()}.part",
                                     f".manifest.json.kcoretool-{os.getpid()}.part"]
    outfile.discard_unfinished()  # what the CLI's interrupt path does
    assert os.listdir(tmp_path) == []


def test_interrupt_on_entering_a_single_files_exit(tmp_path, monkeypatch):
    _interrupt_on_entry(monkeypatch, OutputFile)
    with pytest.raises(Interrupted):
        with OutputFile(str(tmp_path / "out.bin")) as f:
            f.write(b"x")
    assert len(os.listdir(tmp_path)) == 1  # the temporary
    outfile.discard_unfinished()
    assert os.listdir(tmp_path) == []
