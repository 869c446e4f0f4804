// SPDX-License-Identifier: GPL-2.0
/*
 * kcoretool_test - test areas with known contents for kcoretool's lab.
 *
 * On load the module creates vmalloc-space areas of every kind kcoretool must
 * read (vmalloc, vmalloc_huge, vmap, vm_map_ram pieces carved from a vmap
 * block with a freed "dirty" piece between live ones, a large vm_map_ram, a
 * lazily freed area and, when safe, an ioremap) and publishes them as JSON in
 * /sys/kernel/debug/kcoretool_test/areas.json.
 *
 * TAG FORMAT.  Every 8-byte little-endian word of every page of every tagged
 * area holds
 *
 *     tag = 0x4B43 << 48 | (area_id & 0xffff) << 32
 *         | (page_index & 0xfffff) << 12 | byte_offset_in_page
 *
 * where byte_offset_in_page = word_index * 8 (0..4088, low 3 bits zero).  So a
 * page read from the wrong area, the wrong page of the right area, or at the
 * wrong offset within a page is detectable from any single word.  The JSON
 * gives, per page, the tag of its first word (byte_offset_in_page = 0).
 * Fixed areas use ids 1..0x7fff; churn areas use 0x8000..0xffff.
 *
 * debugfs (/sys/kernel/debug/kcoretool_test/):
 *   areas.json   the areas, see kct_render()
 *   control      write "free_lazy" (vfree the lazy area now: module load
 *                completion purges lazy areas, so this must come afterwards),
 *                "churn_start" or "churn_stop"; "grow N" vmallocs N more
 *                areas of KCT_GROW_PAGES pages from kct_grow() (a known
 *                caller for leak-hunting diffs), "grow_free" vfrees them all
 *   churn_total  areas created by the churn thread so far
 *   churn_rate   areas per second over the churn thread's last full second
 *
 * Parameters: churn=1 starts the churn thread at load; ioremap_phys=ADDR
 * ioremaps one page there (default 0xfed00000, the HPET on q35/pc; 0 = none;
 * the mapping is never read); lazy=0 skips the lazy area.
 */
#include <linux/atomic.h>
#include <linux/cpumask.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#define KCT_MAGIC		0x4B43ULL
#define KCT_CHURN_ID_BASE	0x8000U
#define KCT_MAX_AREAS		32
#define KCT_MAX_GROWN		16384	/* areas "grow N" may hold at once */
#define KCT_GROWN_LISTED	1024	/* areas.json lists addresses up to this many */
#define KCT_GROW_PAGES		2
#define KCT_TAG_FORMAT							\
	"u64 LE word = 0x4B43<<48 | (area_id&0xffff)<<32 | (page_index&0xfffff)<<12 | byte_offset_in_page (word_index*8); fixed ids 1..0x7fff, churn ids 0x8000..0xffff"

/* mm/vmalloc.c's private vmap-block geometry, recomputed from the same
 * compile-time inputs so the JSON can name each piece's block. */
#define KCT_VMALLOC_PAGES	((128UL << 30) / PAGE_SIZE)
#define KCT_VMAP_MAX_ALLOC	BITS_PER_LONG
#define KCT_BBMAP_BITS							\
	min(1024UL, max(2UL * KCT_VMAP_MAX_ALLOC,			\
			KCT_VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS) / 16))
#define KCT_VMAP_BLOCK_SIZE	(KCT_BBMAP_BITS * PAGE_SIZE)

static bool churn;
module_param(churn, bool, 0444);
MODULE_PARM_DESC(churn, "start the churn thread at load");
static unsigned long ioremap_phys = 0xfed00000UL;
module_param(ioremap_phys, ulong, 0444);
MODULE_PARM_DESC(ioremap_phys, "physical page to ioremap (never read); 0 disables");
static bool lazy = true;
module_param(lazy, bool, 0444);
MODULE_PARM_DESC(lazy, "create an area to vfree on 'free_lazy'");

struct kct_area {
	u32 id;
	const char *name;
	const char *kind;	/* vmalloc|vmalloc_huge|vmap|vm_map_ram_piece|... */
	const char *caller;	/* function whose address vmallocinfo shows */
	void *addr;
	unsigned long size;	/* bytes requested/mapped, without guard page */
	unsigned int nr_pages;
	struct page **pages;	/* pages we own (vmap, vm_map_ram); else NULL */
	phys_addr_t *phys;	/* per page, recorded while mapped */
	bool tagged;
	bool live;
	const char *state;	/* live | freed | lazy_freed | live_pending_lazy_free */
	bool has_block;
	unsigned long block_start;
	int phys_contig_2m;	/* -1 n/a, else 1 if every 2 MiB run is contiguous+aligned */
};

static struct kct_area kct_areas[KCT_MAX_AREAS];
static int kct_nr_areas;
static DEFINE_MUTEX(kct_lock);
static struct dentry *kct_dir;
static char *kct_json;		/* rendered areas.json (vmalloc'd, persistent) */
static size_t kct_json_cap, kct_json_len;

static struct task_struct *kct_churn_task;
static u64 kct_churn_total, kct_churn_rate;
static struct kct_area *kct_lazy_area;
static void **kct_grown;	/* kcalloc'd on the first grow (never vmalloc'd) */
static unsigned int kct_nr_grown;

static inline u64 kct_tag(u32 id, u32 page, u32 off)
{
	return KCT_MAGIC << 48 | (u64)(id & 0xffff) << 32 |
	       (u64)(page & 0xfffff) << 12 | (off & 0xfff);
}

static void kct_tag_page(void *page_addr, u32 id, u32 index)
{
	u64 *w = page_addr;
	u32 i;

	for (i = 0; i < PAGE_SIZE / 8; i++)
		w[i] = kct_tag(id, index, i * 8);
}

static void kct_tag_range(void *addr, unsigned int nr_pages, u32 id)
{
	unsigned int i;

	for (i = 0; i < nr_pages; i++)
		kct_tag_page((char *)addr + (unsigned long)i * PAGE_SIZE, id, i);
}

static struct kct_area *kct_new(const char *name, const char *kind, const char *caller)
{
	struct kct_area *a;

	if (kct_nr_areas >= KCT_MAX_AREAS)
		return NULL;
	a = &kct_areas[kct_nr_areas];
	memset(a, 0, sizeof(*a));
	a->id = kct_nr_areas + 1;
	a->name = name;
	a->kind = kind;
	a->caller = caller;
	a->state = "live";
	a->phys_contig_2m = -1;
	return a;
}

/* Record per-page physical addresses as the kernel sees them, then commit. */
static int kct_commit(struct kct_area *a, void *addr, unsigned int nr_pages,
		      bool tag, bool mapped_pages)
{
	unsigned int i;

	a->addr = addr;
	a->nr_pages = nr_pages;
	a->size = (unsigned long)nr_pages * PAGE_SIZE;
	a->phys = kcalloc(nr_pages, sizeof(*a->phys), GFP_KERNEL);
	if (!a->phys)
		return -ENOMEM;
	for (i = 0; i < nr_pages; i++) {
		void *p = (char *)addr + (unsigned long)i * PAGE_SIZE;

		if (mapped_pages)
			a->phys[i] = (phys_addr_t)vmalloc_to_pfn(p) << PAGE_SHIFT;
	}
	if (tag) {
		kct_tag_range(addr, nr_pages, a->id);
		a->tagged = true;
	}
	a->live = true;
	kct_nr_areas++;
	return 0;
}

static struct page **kct_alloc_pages(unsigned int n)
{
	struct page **pages = kcalloc(n, sizeof(*pages), GFP_KERNEL);
	unsigned int i;

	if (!pages)
		return NULL;
	for (i = 0; i < n; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		if (!pages[i]) {
			while (i--)
				__free_page(pages[i]);
			kfree(pages);
			return NULL;
		}
	}
	return pages;
}

static void kct_free_pages(struct page **pages, unsigned int n)
{
	unsigned int i;

	if (!pages)
		return;
	for (i = 0; i < n; i++)
		if (pages[i])
			__free_page(pages[i]);
	kfree(pages);
}

/* Each kind is made in its own function so /proc/vmallocinfo's caller column
 * names a predictable symbol (recorded as "caller").  noipa: no inlining and
 * no .constprop/.isra clones that would rename the symbol. */
#define KCT_CALLER noinline __attribute__((__noipa__))
static KCT_CALLER int kct_make_vmalloc(const char *name, unsigned int nr_pages)
{
	struct kct_area *a = kct_new(name, "vmalloc", "kct_make_vmalloc");
	void *p;

	if (!a)
		return -ENOSPC;
	p = vmalloc((unsigned long)nr_pages * PAGE_SIZE);
	if (!p)
		return -ENOMEM;
	return kct_commit(a, p, nr_pages, true, true);
}

/* vmalloc_huge() arrived in 5.18 (no huge vmalloc on x86 before): older
 * kernels simply lack the area. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 18, 0)
static KCT_CALLER int kct_make_vmalloc_huge(const char *name, unsigned long size)
{
	struct kct_area *a = kct_new(name, "vmalloc_huge", "kct_make_vmalloc_huge");
	unsigned int i, j, nr = size >> PAGE_SHIFT;
	void *p;
	int ret;

	if (!a)
		return -ENOSPC;
	p = vmalloc_huge(size, GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	ret = kct_commit(a, p, nr, true, true);
	if (ret)
		return ret;
	/* A 2 MiB mapping is only possible where a run of 512 pages is
	 * physically contiguous and 2 MiB aligned; report whether we got it. */
	a->phys_contig_2m = (nr % 512 == 0);
	for (i = 0; i < nr && a->phys_contig_2m; i += 512) {
		if (a->phys[i] & ((2UL << 20) - 1))
			a->phys_contig_2m = 0;
		for (j = 1; j < 512 && a->phys_contig_2m; j++)
			if (a->phys[i + j] != a->phys[i] + (phys_addr_t)j * PAGE_SIZE)
				a->phys_contig_2m = 0;
	}
	return 0;
}
#else
static int kct_make_vmalloc_huge(const char *name, unsigned long size)
{
	return 0;
}
#endif

static KCT_CALLER int kct_make_vmap(const char *name, unsigned int nr_pages)
{
	struct kct_area *a = kct_new(name, "vmap", "kct_make_vmap");
	struct page **pages = kct_alloc_pages(nr_pages);
	void *p;

	if (!a || !pages) {
		kct_free_pages(pages, nr_pages);
		return -ENOMEM;
	}
	p = vmap(pages, nr_pages, VM_MAP, PAGE_KERNEL);
	if (!p) {
		kct_free_pages(pages, nr_pages);
		return -ENOMEM;
	}
	a->pages = pages;
	return kct_commit(a, p, nr_pages, true, true);
}

static KCT_CALLER int kct_make_ram(const char *name, const char *kind, unsigned int nr_pages)
{
	struct kct_area *a = kct_new(name, kind, "kct_make_ram");
	struct page **pages = kct_alloc_pages(nr_pages);
	void *p;
	int ret;

	if (!a || !pages) {
		kct_free_pages(pages, nr_pages);
		return -ENOMEM;
	}
	p = vm_map_ram(pages, nr_pages, NUMA_NO_NODE);
	if (!p) {
		kct_free_pages(pages, nr_pages);
		return -ENOMEM;
	}
	a->pages = pages;
	ret = kct_commit(a, p, nr_pages, true, true);
	if (!ret && nr_pages <= KCT_VMAP_MAX_ALLOC) {
		/* vmap blocks are VMAP_BLOCK_SIZE-aligned (new_vmap_block). */
		a->has_block = true;
		a->block_start = (unsigned long)p & ~(KCT_VMAP_BLOCK_SIZE - 1);
	}
	return ret;
}

static void kct_unmap_ram(struct kct_area *a, const char *state)
{
	vm_unmap_ram(a->addr, a->nr_pages);
	a->live = false;
	a->state = state;
}

/*
 * The pieces must come from one vmap block, and vm_map_ram() carves from the
 * *current CPU's* block queue, so do them all from a worker bound to one CPU.
 * Blocks hand out space bump-wise: 1p at off 0, 2p at 1, the 2p to be freed
 * at 3, the 3p piece (order 2: 4 pages) at 5.  Freeing the 2p piece then
 * leaves dirty pages between two live pieces.
 */
static long kct_make_pieces(void *unused)
{
	int ret, freed_idx;

	ret = kct_make_ram("ram_piece_1p", "vm_map_ram_piece", 1);
	if (!ret)
		ret = kct_make_ram("ram_piece_2p", "vm_map_ram_piece", 2);
	freed_idx = kct_nr_areas;
	if (!ret)
		ret = kct_make_ram("ram_piece_freed_2p", "vm_map_ram_piece", 2);
	if (!ret)
		ret = kct_make_ram("ram_piece_3p", "vm_map_ram_piece", 3);
	if (!ret)
		kct_unmap_ram(&kct_areas[freed_idx], "freed");
	return ret;
}

static KCT_CALLER int kct_make_lazy(const char *name, unsigned int nr_pages)
{
	int ret = kct_make_vmalloc(name, nr_pages);

	if (ret)
		return ret;
	kct_lazy_area = &kct_areas[kct_nr_areas - 1];
	kct_lazy_area->kind = "lazy_freed";
	kct_lazy_area->state = "live_pending_lazy_free";
	return 0;
}

static void kct_free_lazy(void)
{
	struct kct_area *a = kct_lazy_area;

	if (!a || !a->live)
		return;
	/*
	 * Module load ends by freeing the init sections from a work item after
	 * an RCU grace period (do_free_init()); on x86 that vfree of a
	 * VM_FLUSH_RESET_PERMS area calls _vm_unmap_aliases(), which purges
	 * every lazy area. Let it run first, or it may purge ours (seen on 6.1
	 * when the snapshot came quickly after insmod). That work item is not
	 * ours to flush, so: its grace period, then a generous pause.
	 */
	synchronize_rcu();
	msleep(500);
	/* vfree() unmaps now but leaves the VA on the lazy list until a purge. */
	vfree(a->addr);
	a->live = false;
	a->state = "lazy_freed";
}

static KCT_CALLER int kct_make_ioremap(const char *name, phys_addr_t phys)
{
	struct kct_area *a = kct_new(name, "ioremap", "kct_make_ioremap");
	void __iomem *p;
	int ret;

	if (!a)
		return -ENOSPC;
	p = ioremap(phys, PAGE_SIZE);
	if (!p)
		return -ENOMEM;
	/* Never touched: only its page tables are looked at (vmalloc_to_pfn). */
	ret = kct_commit(a, (void __force *)p, 1, false, false);
	if (!ret)
		a->phys[0] = phys;
	return ret;
}

/* "grow N": N areas from one known caller, held until "grow_free". */
static KCT_CALLER int kct_grow(unsigned int n)
{
	unsigned int i;

	if (!kct_grown) {
		kct_grown = kcalloc(KCT_MAX_GROWN, sizeof(*kct_grown), GFP_KERNEL);
		if (!kct_grown)
			return -ENOMEM;
	}
	if (n > KCT_MAX_GROWN - kct_nr_grown)
		return -ENOSPC;
	for (i = 0; i < n; i++) {
		void *p = vmalloc(KCT_GROW_PAGES * PAGE_SIZE);

		if (!p)
			return -ENOMEM;
		kct_grown[kct_nr_grown++] = p;
	}
	return 0;
}

static void kct_grow_free(void)
{
	while (kct_nr_grown)
		vfree(kct_grown[--kct_nr_grown]);
}

/* ---- JSON ---- */

/* Persistent buffer for areas.json: vmalloc'd once here (a named caller in
 * vmallocinfo), so reading the file allocates no vmalloc area of its own. */
static KCT_CALLER int kct_alloc_json_buffer(size_t size)
{
	kct_json_cap = PAGE_ALIGN(size);
	kct_json = vmalloc(kct_json_cap);
	return kct_json ? 0 : -ENOMEM;
}

static void kct_put(const char *fmt, ...) __printf(1, 2);
static void kct_put(const char *fmt, ...)
{
	va_list ap;

	if (kct_json_len >= kct_json_cap)
		return;
	va_start(ap, fmt);
	kct_json_len += vscnprintf(kct_json + kct_json_len, kct_json_cap - kct_json_len, fmt, ap);
	va_end(ap);
}

/* Called with kct_lock held. */
static void kct_render(void)
{
	int i;
	unsigned int j;

	kct_json_len = 0;
	kct_put("{\"module\": \"kcoretool_test\", \"format_version\": 1,\n");
	kct_put(" \"release\": \"%s\", \"page_size\": %lu,\n", utsname()->release, PAGE_SIZE);
	kct_put(" \"nr_cpus_config\": %d, \"nr_cpu_ids\": %u,\n", NR_CPUS, nr_cpu_ids);
	kct_put(" \"vmap_max_alloc\": %d, \"vmap_bbmap_bits\": %lu, \"vmap_block_size\": %lu,\n",
		KCT_VMAP_MAX_ALLOC, (unsigned long)KCT_BBMAP_BITS,
		(unsigned long)KCT_VMAP_BLOCK_SIZE);
	kct_put(" \"tag_magic\": %llu, \"tag_format\": \"%s\",\n", KCT_MAGIC, KCT_TAG_FORMAT);
	kct_put(" \"churn\": {\"running\": %s, \"total\": %llu, \"rate\": %llu, \"id_base\": %u},\n",
		kct_churn_task ? "true" : "false", READ_ONCE(kct_churn_total),
		READ_ONCE(kct_churn_rate), KCT_CHURN_ID_BASE);
	kct_put(" \"json_buffer\": {\"addr\": %lu, \"size\": %zu},\n",
		(unsigned long)kct_json, kct_json_cap);
	kct_put(" \"grown\": {\"caller\": \"kct_grow\", \"pages_each\": %d, \"count\": %u, \"addrs\": ",
		KCT_GROW_PAGES, kct_nr_grown);
	if (kct_nr_grown <= KCT_GROWN_LISTED) {
		for (j = 0; j < kct_nr_grown; j++)
			kct_put("%s%lu", j ? ", " : "[", (unsigned long)kct_grown[j]);
		kct_put("%s},\n", kct_nr_grown ? "]" : "[]");
	} else {
		kct_put("null},\n");
	}
	kct_put(" \"areas\": [\n");
	for (i = 0; i < kct_nr_areas; i++) {
		struct kct_area *a = &kct_areas[i];

		kct_put("  {\"id\": %u, \"name\": \"%s\", \"kind\": \"%s\", \"caller\": \"%s\",\n",
			a->id, a->name, a->kind, a->caller);
		kct_put("   \"addr\": %lu, \"size\": %lu, \"nr_pages\": %u, \"live\": %s, \"state\": \"%s\", \"tagged\": %s,\n",
			(unsigned long)a->addr, a->size, a->nr_pages, a->live ? "true" : "false",
			a->state, a->tagged ? "true" : "false");
		if (a->has_block)
			kct_put("   \"block_start\": %lu, \"block_offset_pages\": %lu,\n", a->block_start,
				((unsigned long)a->addr - a->block_start) >> PAGE_SHIFT);
		if (a->phys_contig_2m >= 0)
			kct_put("   \"phys_contiguous_2m\": %s,\n", a->phys_contig_2m ? "true" : "false");
		kct_put("   \"pages\": [");
		for (j = 0; j < a->nr_pages; j++) {
			kct_put("%s{\"index\": %u, \"phys\": %llu, \"tag\": ", j ? ", " : "", j,
				(unsigned long long)a->phys[j]);
			if (a->tagged)
				kct_put("%llu}", kct_tag(a->id, j, 0));
			else
				kct_put("null}");
		}
		kct_put("]}%s\n", i + 1 < kct_nr_areas ? "," : "");
	}
	kct_put(" ]}\n");
	if (kct_json_len >= kct_json_cap - 1)
		pr_warn("kcoretool_test: areas.json truncated\n");
}

static ssize_t kct_json_read(struct file *f, char __user *buf, size_t len, loff_t *pos)
{
	ssize_t ret;

	mutex_lock(&kct_lock);
	/* Re-render at the start of every read so churn counters are fresh;
	 * later chunks of the same read see the same text unless state changed. */
	if (*pos == 0)
		kct_render();
	ret = simple_read_from_buffer(buf, len, pos, kct_json, kct_json_len);
	mutex_unlock(&kct_lock);
	return ret;
}

static const struct file_operations kct_json_fops = {
	.owner = THIS_MODULE,
	.read = kct_json_read,
	.llseek = default_llseek,
};

/* ---- churn ---- */

static int kct_churn_fn(void *unused)
{
	struct page **pool = kct_alloc_pages(8);
	unsigned long window = jiffies + HZ;
	u64 seq = 0, at_window = 0;

	if (!pool)
		return -ENOMEM;
	while (!kthread_should_stop()) {
		u32 id = KCT_CHURN_ID_BASE | (u32)(seq & 0x7fff);
		unsigned int n = 1 + (seq >> 1) % 8;
		void *p;

		if (seq & 1) {
			p = vmalloc((unsigned long)n * PAGE_SIZE);
			if (p) {
				kct_tag_range(p, n, id);
				vfree(p);
			}
		} else {
			p = vm_map_ram(pool, n, NUMA_NO_NODE);
			if (p) {
				kct_tag_range(p, n, id);
				vm_unmap_ram(p, n);
			}
		}
		seq++;
		WRITE_ONCE(kct_churn_total, READ_ONCE(kct_churn_total) + 1);
		if (time_after_eq(jiffies, window)) {
			WRITE_ONCE(kct_churn_rate, seq - at_window);
			at_window = seq;
			window = jiffies + HZ;
		}
		if (!(seq & 31))
			cond_resched();
	}
	kct_free_pages(pool, 8);
	return 0;
}

/* Called with kct_lock held. */
static int kct_churn_start(void)
{
	struct task_struct *t;

	if (kct_churn_task)
		return 0;
	t = kthread_run(kct_churn_fn, NULL, "kct_churn");
	if (IS_ERR(t))
		return PTR_ERR(t);
	kct_churn_task = t;
	return 0;
}

static void kct_churn_stop(void)
{
	if (kct_churn_task) {
		kthread_stop(kct_churn_task);
		kct_churn_task = NULL;
	}
}

static ssize_t kct_control_write(struct file *f, const char __user *ubuf, size_t len, loff_t *pos)
{
	char cmd[32];
	size_t n = min(len, sizeof(cmd) - 1);
	int ret = 0;

	if (copy_from_user(cmd, ubuf, n))
		return -EFAULT;
	cmd[n] = 0;
	strim(cmd);
	mutex_lock(&kct_lock);
	if (!strcmp(cmd, "free_lazy"))
		kct_free_lazy();
	else if (!strncmp(cmd, "grow ", 5)) {
		unsigned int n;

		ret = kstrtouint(cmd + 5, 10, &n);
		if (!ret)
			ret = kct_grow(n);
	} else if (!strcmp(cmd, "grow_free"))
		kct_grow_free();
	else if (!strcmp(cmd, "churn_start"))
		ret = kct_churn_start();
	else if (!strcmp(cmd, "churn_stop"))
		kct_churn_stop();
	else
		ret = -EINVAL;
	mutex_unlock(&kct_lock);
	return ret ? ret : len;
}

static const struct file_operations kct_control_fops = {
	.owner = THIS_MODULE,
	.write = kct_control_write,
	.llseek = noop_llseek,
};

/* ---- load / unload ---- */

static void kct_teardown(void)
{
	int i;

	kct_churn_stop();
	kct_grow_free();
	kfree(kct_grown);
	kct_grown = NULL;
	for (i = kct_nr_areas - 1; i >= 0; i--) {
		struct kct_area *a = &kct_areas[i];

		if (a->live) {
			if (!strcmp(a->kind, "vm_map_ram_piece") || !strcmp(a->kind, "vm_map_ram_large"))
				vm_unmap_ram(a->addr, a->nr_pages);
			else if (!strcmp(a->kind, "vmap"))
				vunmap(a->addr);
			else if (!strcmp(a->kind, "ioremap"))
				iounmap((void __iomem __force *)a->addr);
			else
				vfree(a->addr);
		}
		kct_free_pages(a->pages, a->nr_pages);
		kfree(a->phys);
	}
	kct_nr_areas = 0;
	vfree(kct_json);
	kct_json = NULL;
}

static int __init kct_init(void)
{
	int ret;

	ret = kct_make_vmalloc("vmalloc_1p", 1);
	if (!ret)
		ret = kct_make_vmalloc("vmalloc_3p", 3);
	if (!ret)
		ret = kct_make_vmalloc("vmalloc_16p", 16);
	if (!ret)
		ret = kct_make_vmalloc("vmalloc_37p", 37);
	if (!ret)
		ret = kct_make_vmalloc_huge("vmalloc_huge_4m", 4UL << 20);
	if (!ret)
		ret = kct_make_vmap("vmap_5p", 5);
	if (!ret)
		ret = (int)work_on_cpu(cpumask_first(cpu_online_mask), kct_make_pieces, NULL);
	if (!ret)
		ret = kct_make_ram("ram_large_80p", "vm_map_ram_large", 80);
	if (!ret && lazy)
		ret = kct_make_lazy("lazy_8p", 8);
	if (!ret && ioremap_phys) {
		/* Only map something that is not RAM; never read it. */
		if (page_is_ram(PHYS_PFN(ioremap_phys)))
			pr_info("kcoretool_test: %#lx is RAM, no ioremap\n", ioremap_phys);
		else if (kct_make_ioremap("ioremap_1p", ioremap_phys))
			pr_info("kcoretool_test: no ioremap of %#lx\n", ioremap_phys);
	}
	if (!ret) {
		unsigned int pages = 0;
		int i;

		for (i = 0; i < kct_nr_areas; i++)
			pages += kct_areas[i].nr_pages;
		ret = kct_alloc_json_buffer(16384 + (size_t)pages * 128 + KCT_GROWN_LISTED * 22);
	}
	if (!ret && churn)
		ret = kct_churn_start();
	if (ret) {
		pr_err("kcoretool_test: setup failed: %d\n", ret);
		kct_teardown();
		return ret;
	}
	kct_dir = debugfs_create_dir("kcoretool_test", NULL);
	debugfs_create_file("areas.json", 0400, kct_dir, NULL, &kct_json_fops);
	debugfs_create_file("control", 0200, kct_dir, NULL, &kct_control_fops);
	debugfs_create_u64("churn_total", 0400, kct_dir, &kct_churn_total);
	debugfs_create_u64("churn_rate", 0400, kct_dir, &kct_churn_rate);
	pr_info("kcoretool_test: %d areas, vmap block size %lu\n", kct_nr_areas,
		(unsigned long)KCT_VMAP_BLOCK_SIZE);
	return 0;
}

static void __exit kct_exit(void)
{
	debugfs_remove_recursive(kct_dir);
	mutex_lock(&kct_lock);
	kct_teardown();
	mutex_unlock(&kct_lock);
}

module_init(kct_init);
module_exit(kct_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kcoretool lab: tagged vmalloc/vmap/vm_map_ram areas");
