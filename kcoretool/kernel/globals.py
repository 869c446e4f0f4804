# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Globals without DWARF
---------------------

BTF describes functions and (from pahole 1.18 on) per-CPU variables but
not other globals (pahole's ``global_var`` feature is off in every lab
kernel's build: 5.10 has no VAR at all, 6.1/6.12/7.3 only the per-CPU
ones), so without a vmlinux the type of every global kcoretool or drgn's
own Linux helpers and ``%crash`` commands read comes from this
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
#: of them a kernel has). Struct sizes follow the kernel's BTF; an array
#: length the kernel's configuration decides is a rule in brackets:
#: ``[NR_SOFTIRQS]`` an enumerator BTF has; ``[extent]`` the symbol's extent
#: in kallsyms (to the next symbol; under 64 KiB) in whole elements,
#: ``[extent nonzero]`` the same less trailing all-zero elements (alignment
#: padding); ``[len NAME]`` the length of global NAME; ``[sizeof(T) / N]``. ``struct { T a; U b; }`` is an
#: anonymous struct laid out with natural alignment. Each entry is checked
#: against the vmlinux's DWARF on every lab kernel (tests/lab/test_drgn_face.py).
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
    "sections_per_block": "int",
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
    # -- read by drgn's Linux helpers and %crash commands (drgn 0.3.0) --
    "init_uts_ns": "struct uts_namespace",
    "linux_banner": "const char []",
    "saved_command_line": "char *",
    "boot_command_line": "char [2048]",  # COMMAND_LINE_SIZE on x86
    "nr_threads": "int",
    "max_threads": "int",
    "total_forks": "unsigned long",
    "panic_cpu": "atomic_t",
    "oops_in_progress": "int",
    "tainted_mask": "unsigned long",
    # printk: the lockless ring buffer (896a8ff6c2f5, v5.10) and its text
    "prb": "struct printk_ringbuffer *",
    "printk_rb_static": "struct printk_ringbuffer",
    "log_buf": "char *",
    # task states: 9 letters since 06eb61844d84 ("sched/debug: Add explicit
    # TASK_IDLE printing", v4.14); drgn's task_state_to_char() reads its length
    "task_state_array": "const char *const [9]",
    "init_nsproxy": "struct nsproxy",
    "init_user_ns": "struct user_namespace",
    "init_ipc_ns": "struct ipc_namespace",
    "init_time_ns": "struct time_namespace",
    "init_cgroup_ns": "struct cgroup_namespace",
    "ipc_mni_shift": "int",
    "init_fs": "struct fs_struct",
    "userspace_init_fs": "struct fs_struct *",
    "init_files": "struct files_struct",
    "root_task_group": "struct task_group",
    "task_groups": "struct list_head",
    "cgrp_dfl_root": "struct cgroup_root",
    "uidhash_table": "struct hlist_head [128]",  # UIDHASH_SZ
    # time: tk_core is timekeeper_data[TIMEKEEPER_CORE] since 22c62b9a84b8
    # ("timekeeping: Introduce auxiliary timekeepers", v6.17)
    "tk_core": "struct { seqcount_raw_spinlock_t seq; struct timekeeper timekeeper; }",
    "timekeeper_data": "struct tk_data [extent]",
    "avenrun": "unsigned long [3]",
    "loops_per_jiffy": "unsigned long",
    "tsc_khz": "unsigned int",
    "cpu_khz": "unsigned int",
    "tick_do_timer_cpu": "int",
    # networking and BPF
    "init_net": "struct net",
    "net_namespace_list": "struct list_head",
    "arp_tbl": "struct neigh_table",
    "map_idr": "struct idr",
    "link_idr": "struct idr",
    "btf_idr": "struct idr",
    # modules, taints
    "taint_flags": "const struct taint_flag [extent nonzero]",  # TAINT_FLAGS_COUNT
    "module_ktype": "struct kobj_type",
    # devices, block, sysfs
    "chrdevs": "struct char_device_struct *[255]",  # CHRDEV_MAJOR_HASH_SIZE
    "major_names": "struct blk_major_name *[255]",  # BLKDEV_MAJOR_HASH_SIZE
    "cdev_map": "struct kobj_map *",
    "blockdev_superblock": "struct super_block *",
    "super_blocks": "struct list_head",
    "block_class": "struct class",
    "bus_kset": "struct kset *",
    "class_kset": "struct kset *",
    "bus_ktype": "struct kobj_type",
    "class_ktype": "struct kobj_type",
    "device_ktype": "struct kobj_type",
    "driver_ktype": "struct kobj_type",
    "sysfs_root_kn": "struct kernfs_node *",
    "pci_bus_type": "struct bus_type",
    "pci_root_buses": "struct list_head",
    "ioport_resource": "struct resource",
    "iomem_resource": "struct resource",
    "ns_file_operations": "struct file_operations",
    # interrupts
    "idt_table": "gate_desc [256]",  # IDT_ENTRIES
    "softirq_vec": "struct softirq_action [NR_SOFTIRQS]",
    "irq_desc_tree": "struct xarray",  # sparse_irqs since 721255b9826b (v6.5)
    "sparse_irqs": "struct maple_tree",
    "nr_irqs": "int",
    "total_nr_irqs": "unsigned int",
    "poll_spurious_irq_timer": "struct timer_list",
    # [BITS_PER_LONG + 1][BITS_TO_LONGS(NR_CPUS)]
    "cpu_bit_bitmap": "const unsigned long [65][sizeof(struct cpumask) / 8]",
    # memory statistics and swap
    "vm_node_stat": "atomic_long_t [NR_VM_NODE_STAT_ITEMS]",
    "vm_zone_stat": "atomic_long_t [NR_VM_ZONE_STAT_ITEMS]",
    "vm_numa_event": "atomic_long_t [NR_VM_NUMA_EVENT_ITEMS]",  # f19298b9516c (v5.14)
    "vm_numa_stat": "atomic_long_t [NR_VM_NUMA_STAT_ITEMS]",  # before it
    "hstates": "struct hstate [2]",  # HUGE_MAX_HSTATE on x86
    "hugetlb_max_hstate": "int",
    "nr_swap_pages": "atomic_long_t",
    "nr_swapfiles": "unsigned int",
    "swap_info": "struct swap_info_struct *[extent]",  # MAX_SWAPFILES
    "swapper_spaces": "struct address_space *[extent]",
    "nr_swapper_spaces": "unsigned int [len swapper_spaces]",
    "stack_slabs": "void *[8192]",  # DEPOT_MAX_SLABS, before 6.8's stack_pools
    # per-CPU variables, for kernels whose BTF has no VARs (pahole < 1.18: Debian's 5.10)
    "runqueues": "struct rq",
    "hrtimer_bases": "struct hrtimer_cpu_base",
    "timer_bases": "struct timer_base [extent]",  # NR_BASES
    "vm_event_states": "struct vm_event_state",
    "exception_stacks": "struct exception_stacks",
    "hardirq_stack_ptr": "struct irq_stack *",
    "tick_cpu_device": "struct tick_device",
}
