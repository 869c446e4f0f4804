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


# -- a layout kcoretool does not know, not a damaged dump (issue 21) -----------

def _hide_member(prog, type_name: str, member: str) -> None:
    """Make ``prog``'s ``struct type_name`` lack ``member``, as a kernel
    that renamed it would."""
    import drgn

    real = prog.type(f"struct {type_name}")
    members = [m for m in real.members if m.name != member]
    fake = prog.struct_type(type_name, real.size, members)

    def finder(prog, kinds, name, filename):
        return fake if name == type_name and drgn.TypeKind.STRUCT in kinds else None

    prog.register_type_finder("hide", finder, enable_index=0)


def test_missing_member_is_an_unknown_layout() -> None:
    from kcoretool.api import Kernel
    from kcoretool.errors import LayoutError

    k = build("6.12", standard_scene("6.12"))
    _hide_member(k.prog, "vmap_area", "va_start")
    with pytest.raises(LayoutError) as e:
        Kernel(k.prog).vmalloc()
    assert str(e.value) == ("kcoretool does not know this kernel's vmalloc layout (unknown): struct vmap_area "
                            "has no member va_start -- please report (the traceback shows where)")
    assert "damaged" not in str(e.value)


def test_value_a_walk_cannot_use_names_the_walk_not_the_dump() -> None:
    """A member where no kernel has one (an offset near 2^61 bytes): the walk's
    arithmetic leaves 64 bits, which damaged values never reach."""
    import drgn

    from kcoretool.api import Kernel
    from kcoretool.errors import LayoutError

    k = build("6.12", standard_scene("6.12"))
    real = k.prog.type("struct vmap_block_queue")
    members = [drgn.TypeMember(m.type, m.name, ((1 << 61) - 8) * 8 if m.name == "vmap_blocks" else m.bit_offset)
               for m in real.members]
    fake = k.prog.struct_type("vmap_block_queue", real.size, members)
    k.prog.register_type_finder(
        "odd", lambda prog, kinds, name, fn: fake if name == "vmap_block_queue" else None, enable_index=0)
    with pytest.raises(LayoutError) as e:
        Kernel(k.prog).vmalloc()
    msg = str(e.value)
    assert msg.startswith("kcoretool does not know this kernel's layout (unknown): a value out of range (")
    assert "in kcoretool.kernel." in msg and "damaged" not in msg
