# SPDX-License-Identifier: LGPL-2.1-or-later
"""Package faces (kcoretool._face): a package's names are its submodules'
__all__, read from source, imported on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kcoretool.kernel
import kcoretool.model
import kcoretool.reader
from kcoretool._face import _all_of, face


def test_a_face_is_its_submodules_all():
    from kcoretool.model import area, build, vmalloc

    names = set(kcoretool.model.__all__)
    assert set(area.__all__) | set(build.__all__) | set(vmalloc.__all__) <= names
    assert kcoretool.model.from_program is build.from_program
    assert kcoretool.model.Area is area.Area
    assert kcoretool.reader.VmallocReader.__module__ == "kcoretool.reader.vread"
    assert kcoretool.kernel.VmallocWalker.__module__ == "kcoretool.kernel.vmalloc"
    assert "Area" in dir(kcoretool.model)
    assert _all_of("kcoretool.model.area") == area.__all__


def test_unknown_names_and_clashes():
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        kcoretool.model.nonsense
    getattr_, _ = face("kcoretool.model", ("area", "area"), dict)
    assert getattr_("Area").__name__ == "Area"  # the same module twice is no clash
    getattr_, _ = face("kcoretool.reader", ("vread", "check", "vread"), dict)
    getattr_("VmallocReader")
    clash, _ = face("kcoretool", ("api", "model.area"), dict)
    with pytest.raises(ImportError, match="is in both"):
        clash("Area")


def test_a_drgn_free_submodule_does_not_import_drgn():
    code = "import sys, kcoretool.kernel.vmflags, kcoretool.model.area; print('drgn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
