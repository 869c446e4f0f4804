// SPDX-License-Identifier: GPL-2.0
/*
 * kcoretool lab (issue 24): what a kernel rootkit leaves behind, for
 * `kcoretool exec audit` to find.  Opt-in: only tests/lab/test_exec_audit.py
 * loads it, after the lab's clean snapshot.  At init it
 *
 *   - vmaps one page and makes it read-only and executable: code that no
 *     module, BPF program or trampoline owns;
 *   - vmaps one page and makes it writable and executable: W+X;
 *   - removes itself from the module list (list_del(&THIS_MODULE->list),
 *     as self-hiding rootkits do); its memory, its mod_tree nodes and its
 *     /sys/module/kcoretool_hide kobject stay.
 *
 * vmap() forces NX whatever pgprot it is given (pgprot_nx() since 5.8), and
 * neither __vmalloc_node_range() nor set_memory_x() is exported on 5.10,
 * 6.1, 6.12 or 7.3.  What all four export is vmap() and lookup_address():
 * the page is vmap'd with PAGE_KERNEL and its PTE rewritten in place (NX
 * cleared, RW cleared for the read-only one), as a rootkit would.  No TLB
 * flush (7.3 exports __flush_tlb_all() to KVM only): nothing runs these
 * pages, and the audit reads the page tables, not the TLB.
 *
 * The addresses are in /sys/module/kcoretool_hide/parameters/{rox,wx}_addr.
 * Writing 1 to .../parameters/unhide puts the module back on the list
 * where it was, so that rmmod can unload it (which vunmaps both pages).
 */
#include <linux/gfp.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <asm/pgtable.h>

static unsigned long rox_addr;
module_param(rox_addr, ulong, 0444);
MODULE_PARM_DESC(rox_addr, "the read-only executable page no one owns");
static unsigned long wx_addr;
module_param(wx_addr, ulong, 0444);
MODULE_PARM_DESC(wx_addr, "the writable and executable page");

static struct page *pages[2];
static void *maps[2];
static struct list_head *hidden_after;

static int unhide_set(const char *val, const struct kernel_param *kp)
{
	if (hidden_after) {
		list_add(&THIS_MODULE->list, hidden_after);
		hidden_after = NULL;
	}
	return 0;
}

static const struct kernel_param_ops unhide_ops = {
	.set = unhide_set,
};
module_param_cb(unhide, &unhide_ops, NULL, 0200);
MODULE_PARM_DESC(unhide, "write 1: back on the module list (then rmmod works)");

static void kch_free(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (maps[i])
			vunmap(maps[i]);
		if (pages[i])
			__free_page(pages[i]);
		maps[i] = NULL;
		pages[i] = NULL;
	}
}

/* the PTE of a vmap'd page, made executable (and read-only if asked) */
static int kch_make_exec(void *addr, bool writable)
{
	unsigned int level;
	pte_t *pte = lookup_address((unsigned long)addr, &level);
	pte_t v;

	if (!pte || level != PG_LEVEL_4K)
		return -EINVAL;
	v = pte_mkexec(*pte);
	if (!writable)
		v = pte_wrprotect(v);
	set_pte(pte, v);
	return 0;
}

static int __init kch_init(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		if (!pages[i]) {
			kch_free();
			return -ENOMEM;
		}
		/* nop sled, then ret: code, as far as anyone can tell */
		memset(page_address(pages[i]), 0x90, PAGE_SIZE - 1);
		((unsigned char *)page_address(pages[i]))[PAGE_SIZE - 1] = 0xc3;
	}
	maps[0] = vmap(&pages[0], 1, VM_MAP, PAGE_KERNEL);
	maps[1] = vmap(&pages[1], 1, VM_MAP, PAGE_KERNEL);
	if (!maps[0] || !maps[1]) {
		kch_free();
		return -ENOMEM;
	}
	if (kch_make_exec(maps[0], false) || kch_make_exec(maps[1], true)) {
		kch_free();
		return -EINVAL;
	}
	rox_addr = (unsigned long)maps[0];
	wx_addr = (unsigned long)maps[1];
	/* off the list; remember where, for unhide */
	hidden_after = THIS_MODULE->list.prev;
	list_del(&THIS_MODULE->list);
	return 0;
}

static void __exit kch_exit(void)
{
	kch_free();
}

module_init(kch_init);
module_exit(kch_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kcoretool lab: an unowned executable page, a W+X page, a module off the list");
