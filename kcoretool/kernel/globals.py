# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Globals without DWARF
---------------------

BTF describes functions and (from pahole 1.18 on) per-CPU variables but
not other globals, so
without a vmlinux the type of every global kcoretool reads comes from this
table (:func:`kcoretool.debuginfo.btfkernel.load_btf_kernel` gets it from
:func:`kcoretool.kernel.program.open_program`).  A walk that reads a new
global adds it here; a test checks that every ``prog["..."]`` in the
package resolves without DWARF.
"""

from __future__ import annotations

from typing import Dict

__all__ = ("GLOBALS",)

#: The type of every global kcoretool (or a drgn helper it calls) reads whose
#: type BTF does not carry. Names absent from a kernel are simply not found,
#: so one table serves every layout (kcoretool.kernel.layout decides which
#: of them a kernel has).
GLOBALS: Dict[str, str] = {
    # mm/vmalloc.c, busy areas: <= 6.8 list + tree, 6.9+ per-node.
    "vmap_area_list": "struct list_head",
    "vmap_area_root": "struct rb_root",
    "vmap_nodes": "struct vmap_node *",
    "nr_vmap_nodes": "unsigned int",
    "vmap_zone_size": "unsigned int",
    "single": "struct vmap_node",
    # lazily freed areas
    "purge_vmap_area_list": "struct list_head",
    "purge_vmap_area_root": "struct rb_root",
    "vmap_purge_list": "struct llist_head",
    "vmap_lazy_nr": "atomic_long_t",
    # free space
    "free_vmap_area_list": "struct list_head",
    "free_vmap_area_root": "struct rb_root",
    # per-CPU vmap_block queues: BTF has per-CPU variables only where
    # pahole encoded them (not Debian's 5.10)
    "vmap_block_queue": "struct vmap_block_queue",
    # vmap_block index before 6.4's per-CPU xarrays
    "vmap_blocks": "struct xarray",
    "vmap_block_tree": "struct radix_tree_root",
    # x86-64 layout (KASLR bases, paging depth)
    "vmalloc_base": "unsigned long",
    "page_offset_base": "unsigned long",
    "vmemmap_base": "unsigned long",
    "__pgtable_l5_enabled": "unsigned int",
    "pgdir_shift": "unsigned int",
    "ptrs_per_p4d": "unsigned int",
    # CPUs and per-CPU data (arrays sized by config: left incomplete)
    "__per_cpu_offset": "unsigned long []",
    "nr_cpu_ids": "unsigned int",
    "__cpu_possible_mask": "struct cpumask",
    "__cpu_online_mask": "struct cpumask",
    "__cpu_present_mask": "struct cpumask",
    # NUMA and memory model
    "node_data": "struct pglist_data *[]",
    "node_states": "nodemask_t []",
    "nr_node_ids": "unsigned int",
    "nr_online_nodes": "int",
    "mem_section": "struct mem_section **",
    "__highest_present_section_nr": "unsigned long",
    "min_low_pfn": "unsigned long",
    "max_low_pfn": "unsigned long",
    "max_pfn": "unsigned long",
    "high_memory": "void *",
    "init_mm": "struct mm_struct",
    "contig_page_data": "struct pglist_data",
    "mem_map": "struct page *",
    "max_mapnr": "unsigned long",
    "memblock": "struct memblock",
    "memory_subsys": "struct bus_type",
    "sections_per_block": "unsigned long",
    "_totalram_pages": "atomic_long_t",
    "vm_committed_as": "struct percpu_counter",
    "total_swap_pages": "long",
    "sysctl_overcommit_ratio": "int",
    "sysctl_overcommit_kbytes": "unsigned long",
    # whatis: tasks, stacks, slab, modules
    "init_task": "struct task_struct",
    "init_pid_ns": "struct pid_namespace",
    "slab_caches": "struct list_head",
    "slab_kset": "struct kset *",
    "task_struct_cachep": "struct kmem_cache *",
    "thread_stack_cache": "struct kmem_cache *",
    "modules": "struct list_head",
    "mod_tree": "struct mod_tree_root",
    # kernel/bpf/btf.c: each loaded module's parsed BTF (module BTF on a vmcore)
    "btf_modules": "struct list_head",
    # executable memory (kcoretool.kernel.execmem): BPF, kprobes, ftrace, execmem
    "pack_list": "struct list_head",
    "bpf_kallsyms": "struct list_head",
    "prog_idr": "struct idr",
    "bpf_dispatcher_xdp": "struct bpf_dispatcher",
    "kprobe_insn_slots": "struct kprobe_insn_cache",
    "kprobe_optinsn_slots": "struct kprobe_insn_cache",
    "ftrace_ops_trampoline_list": "struct list_head",
    "execmem_cache": "struct execmem_cache",
    # exec audit (kcoretool.reader.execaudit): modules off the list, the
    # real-mode trampoline, the kernel's own classic BPF filter
    "module_kset": "struct kset *",
    "real_mode_header": "struct real_mode_header *",
    "ptp_insns": "struct bpf_prog *",
    "init_free_list": "struct llist_head",
    "jiffies": "volatile unsigned long",
    "jiffies_64": "u64",
}
