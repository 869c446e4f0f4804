# SPDX-License-Identifier: LGPL-2.1-or-later
"""kcoretool.kernel.address: what drgn says an address is."""

from __future__ import annotations

from kcoretool.kernel.address import kernel_identities
from tests.synth.layouts import VMALLOC_START as V
from tests.synth.layouts import build, standard_scene


def test_a_vmalloc_address_is_no_direct_map_and_drgn_s_vmap_answer_is_left_to_the_model():
    prog = build("6.12", standard_scene("6.12")).prog
    what = kernel_identities(prog, V + 0x10010, in_vmalloc_area=True)
    assert all(w["kind"] not in ("vmap", "direct map") for w in what)


def test_an_unknown_address_is_nothing():
    prog = build("6.12", standard_scene("6.12")).prog
    assert kernel_identities(prog, 0x1000, in_vmalloc_area=False) == []
