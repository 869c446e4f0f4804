"""VM_* flag names: one function over vm_struct's table and a VMA's."""

from kcoretool.kernel.vmflags import VMA_FLAG_NAMES, vm_flag_names, vm_struct_flag_names


def test_vm_struct_flags():
    assert vm_flag_names(0x2 | 0x40 | 0x400) == ("VM_ALLOC", "VM_NO_GUARD", "VM_ALLOW_HUGE_VMAP")
    # v5.13 .. v5.18: 0x400 was the opt-out VM_NO_HUGE_VMAP
    assert vm_flag_names(0x402, vm_struct_flag_names(allow_huge=False)) == ("VM_ALLOC", "VM_NO_HUGE_VMAP")
    # a kernel without VM_SPARSE: the bit is unknown, shown as hex
    assert vm_flag_names(0x1002, vm_struct_flag_names(sparse=False)) == ("VM_ALLOC", "0x1000")
    assert vm_flag_names(0x2 | 1 << 40) == ("VM_ALLOC", "0x10000000000")


def test_vma_flags():
    assert vm_flag_names(0x100073, VMA_FLAG_NAMES) == ("READ", "WRITE", "MAYREAD", "MAYWRITE", "MAYEXEC",
                                                       "ACCOUNT")
    assert vm_flag_names(0x1 | 1 << 33, VMA_FLAG_NAMES) == ("READ", "0x200000000")
