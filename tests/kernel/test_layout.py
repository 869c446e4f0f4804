# SPDX-License-Identifier: LGPL-2.1-or-later
"""Layout detection on synthetic kernels of every layout, and open_program errors."""

from __future__ import annotations

import pytest

from kcoretool.errors import AccessError, CoreFormatError, KcoreToolError
from kcoretool.kernel import detect_layout, install_hint, open_program
from tests.synth.layouts import LAYOUTS, build, standard_scene

# layout -> expected (busy, va_flags, lazy, block_index, used_map, cpu,
#                     page_order, requested_size, sparse, node_id)
EXPECTED = {
    "5.3": ("vmap_area_list", "legacy", "busy", "global", False, False, False, False, False, False),
    "5.4": ("vmap_area_list", "none", "llist", "global", False, False, False, False, False, False),
    "6.1": ("vmap_area_list", "none", "list", "global", False, False, True, False, False, False),
    "6.3": ("vmap_area_list", "vmap_ram", "list", "global", True, False, True, False, False, False),
    "6.4": ("vmap_area_list", "vmap_ram", "list", "percpu", True, False, True, False, False, False),
    "6.9": ("vmap_nodes", "vmap_ram", "nodes", "percpu", True, False, True, False, True, True),
    "6.12": ("vmap_nodes", "vmap_ram", "nodes", "percpu", True, True, True, False, True, True),
    "latest": ("vmap_nodes", "vmap_ram", "nodes", "percpu", True, True, True, True, True, True),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_detect_layout(layout: str) -> None:
    k = build(layout, standard_scene(layout))
    L = detect_layout(k.prog)
    got = (
        L.busy, L.va_flags, L.lazy, L.block_index, L.block_used_map, L.block_cpu,
        L.vm_page_order, L.vm_requested_size, L.vm_sparse, L.va_flags_node_id,
    )
    assert got == EXPECTED[layout]
    assert L.vmallocinfo_skips_uninitialized == (layout == "latest")
    # Every decision carries its evidence and a commit citation.
    d = L.describe()
    assert {e["feature"] for e in d} >= {"busy", "va_flags", "lazy", "block_index"}
    assert all(e["commit"] for e in d)
    assert L.to_dict()["label"] == L.label


def test_labels_are_distinct() -> None:
    labels = {detect_layout(build(l, standard_scene(l)).prog).label for l in LAYOUTS}
    assert len(labels) == len(LAYOUTS)


def test_open_program_missing_file(tmp_path) -> None:
    with pytest.raises(AccessError) as e:
        open_program(str(tmp_path / "nope"))
    assert "\n" not in str(e.value)


def test_open_program_not_a_core(tmp_path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"hello world" * 100)
    with pytest.raises(CoreFormatError) as e:
        open_program(str(p))
    assert "\n" not in str(e.value)


def test_open_program_missing_vmlinux(tmp_path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"hello world" * 100)
    with pytest.raises(KcoreToolError):
        open_program(str(p), vmlinux=str(tmp_path / "vmlinux"))


def test_install_hint_names_packages() -> None:
    h = install_hint("6.1.0-56-amd64")
    assert "linux-image-6.1.0-56-amd64-dbg" in h and "kernel-debuginfo" in h
