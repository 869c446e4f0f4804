"""The model builder's live revalidation (:func:`kcoretool.model.build.revalidator`)
against a synthetic kernel whose memory changes under it."""

from __future__ import annotations

import dataclasses

from kcoretool.model import from_program, revalidator
from tests.synth.layouts import PAGE, build, standard_scene


def test_revalidator_rereads_the_vmap_area() -> None:
    k = build("6.12", standard_scene("6.12"))
    model = from_program(k.prog)
    revalidate = revalidator(k.prog, model)
    with_vm = next(a for a in model.areas if a.vm is not None)
    without_vm = next(a for a in model.areas if a.vm is None)
    assert revalidate(with_vm) is with_vm  # unchanged: the same object back
    assert revalidate(without_vm) is without_vm
    # A range the kernel's vmap_area no longer has: gone.
    assert revalidate(dataclasses.replace(with_vm, end=with_vm.end + PAGE)) is None
    # A vm_struct whose fields moved on: the current one comes back.
    stale = dataclasses.replace(with_vm, vm=dataclasses.replace(with_vm.vm, caller=1))
    assert revalidate(stale) == with_vm


def test_revalidation_rebuilds_names_and_kind() -> None:
    """When the kernel changes a vm_struct's flags, the area comes back as
    the builder would make it now: flag names and kind follow the flags."""
    k = build("6.12", standard_scene("6.12"))
    model = from_program(k.prog)
    area = next(a for a in model.areas if a.kind == "vmalloc")
    k.img.w64(area.vm.address + k.img.offsetof("vm_struct", "flags"), 0x1)  # VM_IOREMAP
    now = revalidator(k.prog, model)(area)
    assert now is not None and now is not area
    assert (now.kind, now.vm.flags, now.vm.flag_names) == ("ioremap", 0x1, ("VM_IOREMAP",))
    assert now.vm.caller_symbol == area.vm.caller_symbol
