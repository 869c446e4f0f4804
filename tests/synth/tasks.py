# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Synthetic kernels for task memory: tasks, mm_structs, VMAs in a maple tree
(or, before 6.1, a vm_next list), files with dentry chains, special
mappings -- for the layouts no lab kernel has and for damage.

Layouts (struct members as in the kernel sources, reference Part 2 §8):

======  ==================================================================
"6.0"   mm->mmap vm_next list + mm_rb; no per-VMA lock; anon_name in a union
"6.1"   mm->mm_mt maple tree; no per-VMA lock; anon_name in a union
"6.12"  + vm_lock_seq (int), vm_lock *, bool detached; int mm_lock_seq
"6.15"  vm_lock_seq (unsigned) + refcount_t vm_refcnt; seqcount_t mm_lock_seq
======  ==================================================================
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from tests.synth.image import Image

LAYOUTS = ("6.0", "6.1", "6.12", "6.15")
ULONG_MAX = (1 << 64) - 1
TEXT = 0xFFFFFFFF81000000
PAGE = 4096
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED, VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC, VM_MAYSHARE = (
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80)
VM_GROWSDOWN = 0x100
PF_KTHREAD = 0x00200000


@dataclasses.dataclass
class VmaSpec:
    start: int
    end: int
    flags: int = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE
    pgoff: int = 0
    path: Optional[str] = None  #: a file mapping: "/usr/bin/prog" etc.
    ino: int = 0
    dev: int = 0
    special: Optional[str] = None  #: "[vdso]" ...: a special mapping's name
    anon_name: Optional[str] = None
    #: lock state: 6.12 layout: detached flag / write-locked (vm_lock_seq ==
    #: mm_lock_seq); 6.15 layout: the refcount
    detached: bool = False
    write_locked: bool = False
    refcnt: Optional[int] = None


@dataclasses.dataclass
class TaskSpec:
    pid: int
    comm: str
    vmas: Optional[List[VmaSpec]] = None  #: None: a kernel thread
    ppid: int = 1
    threads: int = 1
    start_brk: int = 0
    brk: int = 0
    start_stack: int = 0
    mm_lock_seq: int = 4


class TaskKernel:
    def __init__(self, layout: str) -> None:
        assert layout in LAYOUTS
        self.layout = layout
        self.img = img = Image(size=1 << 24)
        self._types(layout)
        self.init_task = img.global_var("init_task", "struct task_struct")
        self._list_init(self.init_task + img.offsetof("task_struct", "tasks"))
        self.fn_special = TEXT + 0x1000
        img.function("special_mapping_name", self.fn_special)
        img.function("simple_dname", TEXT + 0x2000)
        self.special_ops = img.alloc_struct("vm_operations_struct")
        img.put("vm_operations_struct", self.special_ops, name=self.fn_special)
        self._root_fs()
        self._files: Dict[str, int] = {}
        self.tasks: Dict[int, int] = {}
        self.mms: Dict[int, int] = {}
        self.vma_addrs: Dict[int, List[int]] = {}
        self.maple_nodes: Dict[int, List[int]] = {}
        self._last_task = self.init_task
        # pid 0's own fields
        img.put("task_struct", self.init_task, pid=0, tgid=0, flags=PF_KTHREAD)
        self._comm(self.init_task, "swapper/0")

    @property
    def prog(self):
        return self.img.prog

    # -- types -----------------------------------------------------------------

    def _types(self, layout: str) -> None:
        img = self.img
        img.struct("list_head", [("struct list_head *", "next"), ("struct list_head *", "prev")])
        img.struct("hlist_bl_node", [("struct hlist_bl_node *", "next"), ("struct hlist_bl_node **", "pprev")])
        img.struct("rb_node", [("unsigned long", "__rb_parent_color"), ("struct rb_node *", "rb_right"),
                               ("struct rb_node *", "rb_left")])
        img.struct("rb_root", [("struct rb_node *", "rb_node")])
        img.struct("qstr", [("unsigned long", "hash_len"), ("char *", "name")])
        img.struct("maple_metadata", [("unsigned char", "end"), ("unsigned char", "gap")])
        img.struct("maple_tree", [("unsigned int", "ma_lock"), ("void *", "ma_root"), ("unsigned int", "ma_flags")]
                   if layout != "6.15" else
                   [("unsigned int", "ma_lock"), ("unsigned int", "ma_flags"), ("void *", "ma_root")])
        img.struct("maple_range_64", [("void *", "parent"), ("unsigned long[15]", "pivot"),
                                      (("union", [("void *[16]", "slot"),
                                                  (("struct", [("void *[15]", "pad"),
                                                               ("struct maple_metadata", "meta")]), None)]), None)])
        img.struct("maple_arange_64", [("void *", "parent"), ("unsigned long[9]", "pivot"), ("void *[10]", "slot"),
                                       ("unsigned long[10]", "gap"), ("struct maple_metadata", "meta")])
        img.struct("maple_node", [(("union", [("struct maple_range_64", "mr64"),
                                               ("struct maple_arange_64", "ma64")]), None)])
        img.struct("path", [("struct vfsmount *", "mnt"), ("struct dentry *", "dentry")])
        img.struct("super_block", [("unsigned long[2]", "pad"), ("unsigned int", "s_dev")])
        img.struct("inode", [("unsigned long[4]", "pad"), ("struct super_block *", "i_sb"),
                             ("unsigned long", "i_ino")])
        img.struct("dentry_operations", [("void *[4]", "pad"), ("void *", "d_dname")])
        img.struct("dentry", [("unsigned int", "d_flags"), ("unsigned int", "d_seq"),
                              ("struct hlist_bl_node", "d_hash"), ("struct dentry *", "d_parent"),
                              ("struct qstr", "d_name"), ("struct inode *", "d_inode"),
                              ("struct dentry_operations *", "d_op")])
        img.struct("vfsmount", [("struct dentry *", "mnt_root"), ("struct super_block *", "mnt_sb"),
                                ("int", "mnt_flags")])
        img.struct("mount", [("unsigned long[2]", "mnt_hash"), ("struct mount *", "mnt_parent"),
                             ("struct dentry *", "mnt_mountpoint"), ("struct vfsmount", "mnt")])
        img.struct("address_space", [("unsigned long[2]", "i_pages")])
        img.struct("file", [("unsigned long", "f_mode"), ("struct path", "f_path"), ("struct inode *", "f_inode"),
                            ("struct address_space *", "f_mapping")])
        img.struct("fs_struct", [("int", "users"), ("unsigned int", "seq"), ("struct path", "root"),
                                 ("struct path", "pwd")])
        img.struct("signal_struct", [("int", "sigcnt"), ("int", "nr_threads"), ("struct list_head", "thread_head")])
        img.struct("vm_operations_struct", [("void *[12]", "pad"), ("void *", "name")])
        img.struct("vm_special_mapping", [("char *", "name"), ("void *", "pages")])
        img.struct("anon_vma_name", [("unsigned int", "kref"), ("char[0]", "name")])
        shared = ("struct", [("struct rb_node", "rb"), ("unsigned long", "rb_subtree_last")])
        common_tail: List = [("struct list_head", "anon_vma_chain"), ("void *", "anon_vma"),
                             ("struct vm_operations_struct *", "vm_ops"), ("unsigned long", "vm_pgoff"),
                             ("struct file *", "vm_file"), ("void *", "vm_private_data")]
        if layout == "6.0":
            vma = [("unsigned long", "vm_start"), ("unsigned long", "vm_end"),
                   ("struct vm_area_struct *", "vm_next"), ("struct vm_area_struct *", "vm_prev"),
                   ("struct rb_node", "vm_rb"), ("unsigned long", "rb_subtree_gap"),
                   ("struct mm_struct *", "vm_mm"), ("unsigned long", "vm_page_prot"),
                   ("unsigned long", "vm_flags"),
                   (("union", [(shared, "shared"), ("struct anon_vma_name *", "anon_name")]), None)] + common_tail
        elif layout == "6.1":
            vma = [("unsigned long", "vm_start"), ("unsigned long", "vm_end"), ("struct mm_struct *", "vm_mm"),
                   ("unsigned long", "vm_page_prot"), ("unsigned long", "vm_flags"),
                   (("union", [(shared, "shared"), ("struct anon_vma_name *", "anon_name")]), None)] + common_tail
        elif layout == "6.12":
            vma = [("unsigned long", "vm_start"), ("unsigned long", "vm_end"), ("struct mm_struct *", "vm_mm"),
                   ("unsigned long", "vm_page_prot"), ("unsigned long", "vm_flags"), ("int", "vm_lock_seq"),
                   ("void *", "vm_lock"), ("bool", "detached")] + common_tail + [
                   ("struct anon_vma_name *", "anon_name"), (shared, "shared")]
        else:
            img.struct("refcount_struct", [("int", "refs")])
            vma = [("unsigned long", "vm_start"), ("unsigned long", "vm_end"), ("struct mm_struct *", "vm_mm"),
                   ("unsigned long", "vm_page_prot"), ("unsigned long", "vm_flags"),
                   ("unsigned int", "vm_lock_seq")] + common_tail + [
                   ("struct anon_vma_name *", "anon_name"), (shared, "shared"),
                   ("struct refcount_struct", "vm_refcnt")]
        img.struct("vm_area_struct", vma)
        # x86: ctx_id and tlb_gen since f39681ed0f48 (v4.14)
        img.struct("mm_context_t", [("unsigned long", "ctx_id"), ("long", "tlb_gen"), ("unsigned long", "flags"),
                                    ("void *", "vdso")])
        if layout in ("6.0", "6.1"):
            img.struct("mm_rss_stat", [("long[4]", "count")])
            rss: List = [("struct mm_rss_stat", "rss_stat")]
        else:
            img.struct("percpu_counter", [("unsigned int", "lock"), ("long", "count"), ("struct list_head", "list"),
                                          ("int *", "counters")])
            rss = [("struct percpu_counter[4]", "rss_stat")]
        if layout == "6.0":
            head: List = [("struct vm_area_struct *", "mmap"), ("struct rb_root", "mm_rb"),
                          ("unsigned long", "vmacache_seqnum")]
        else:
            head = [("struct maple_tree", "mm_mt")]
        lockseq: List = []
        if layout == "6.12":
            lockseq = [("int", "mm_lock_seq")]
        elif layout == "6.15":
            img.struct("seqcount", [("unsigned int", "sequence")])
            lockseq = [("struct seqcount", "mm_lock_seq")]
        img.struct("mm_struct", head + [("unsigned long", "mmap_base"), ("void *", "pgd"), ("int", "map_count"),
                                        ("unsigned long", "total_vm"), ("unsigned long", "locked_vm"),
                                        ("unsigned long", "data_vm"), ("unsigned long", "exec_vm"),
                                        ("unsigned long", "stack_vm"), ("unsigned long", "start_brk"),
                                        ("unsigned long", "brk"), ("unsigned long", "start_stack")]
                   + rss + [("struct mm_context_t", "context")] + lockseq)
        state = "state" if layout == "4.x" else "__state"
        img.struct("task_struct", [("void *", "thread_info"), ("unsigned int", state), ("unsigned int", "flags"),
                                   ("unsigned long[8]", "pad1"), ("struct list_head", "tasks"),
                                   ("struct mm_struct *", "mm"), ("struct mm_struct *", "active_mm"),
                                   ("int", "exit_state"), ("int", "pid"), ("int", "tgid"),
                                   ("struct task_struct *", "real_parent"), ("struct list_head", "thread_node"),
                                   ("char[16]", "comm"), ("struct fs_struct *", "fs"),
                                   ("struct signal_struct *", "signal"), ("unsigned long[4]", "pad2")])

    # -- helpers -----------------------------------------------------------------

    def _list_init(self, head: int) -> None:
        self.img.w64(head, head)
        self.img.w64(head + 8, head)

    def _list_add_tail(self, head: int, node: int) -> None:
        prev = self.img.r64(head + 8)
        self.img.w64(node, head)
        self.img.w64(node + 8, prev)
        self.img.w64(prev, node)
        self.img.w64(head + 8, node)

    def _comm(self, task: int, comm: str) -> None:
        self.img.wbytes(task + self.img.offsetof("task_struct", "comm"), comm.encode()[:15] + b"\0")

    def _cstring(self, s: str) -> int:
        b = s.encode() + b"\0"
        a = self.img.alloc(len(b), 8)
        self.img.wbytes(a, b)
        return a

    def _dentry(self, name: str, parent: Optional[int], inode: int = 0, hashed: bool = True) -> int:
        img = self.img
        d = img.alloc_struct("dentry")
        img.put("dentry", d, d_parent=parent if parent else d, d_name__name=self._cstring(name), d_inode=inode)
        if hashed and parent:
            img.put("dentry", d, d_hash__pprev=d)  # any non-NULL: hashed
        return d

    def _root_fs(self) -> None:
        img = self.img
        self.sb = img.alloc_struct("super_block")
        img.put("super_block", self.sb, s_dev=(254 << 20) | 1)
        self.root_dentry = self._dentry("/", None)
        self.mount = img.alloc_struct("mount")
        vfs = self.mount + img.offsetof("mount", "mnt")
        img.put("mount", self.mount, mnt_parent=self.mount, mnt_mountpoint=self.root_dentry,
                mnt__mnt_root=self.root_dentry, mnt__mnt_sb=self.sb)
        self.vfsmount = vfs
        self.fs = img.alloc_struct("fs_struct")
        img.put("fs_struct", self.fs, root__mnt=vfs, root__dentry=self.root_dentry)
        self._dirs: Dict[str, int] = {"": self.root_dentry}

    def file(self, path: str, ino: int, dev: int = 0, deleted: bool = False) -> int:
        key = f"{path}:{ino}"
        if key in self._files:
            return self._files[key]
        img = self.img
        parent = self.root_dentry
        parts = path.strip("/").split("/")
        sofar = ""
        for comp in parts[:-1]:
            sofar += "/" + comp
            if sofar not in self._dirs:
                self._dirs[sofar] = self._dentry(comp, parent)
            parent = self._dirs[sofar]
        inode = img.alloc_struct("inode")
        sb = self.sb
        if dev:
            sb = img.alloc_struct("super_block")
            img.put("super_block", sb, s_dev=dev)
        img.put("inode", inode, i_ino=ino, i_sb=sb)
        d = self._dentry(parts[-1], parent, inode, hashed=not deleted)
        f = img.alloc_struct("file")
        img.put("file", f, f_path__mnt=self.vfsmount, f_path__dentry=d, f_inode=inode)
        self._files[key] = f
        return f

    # -- tasks -------------------------------------------------------------------

    def add_task(self, spec: TaskSpec) -> int:
        img = self.img
        t = img.alloc_struct("task_struct")
        sig = img.alloc_struct("signal_struct")
        img.put("signal_struct", sig, nr_threads=spec.threads)
        self._list_init(sig + img.offsetof("signal_struct", "thread_head"))
        parent = self.tasks.get(spec.ppid, self.init_task)
        img.put("task_struct", t, pid=spec.pid, tgid=spec.pid, real_parent=parent, signal=sig, fs=self.fs,
                flags=0 if spec.vmas is not None else PF_KTHREAD)
        img.w32(t + img.offsetof("task_struct", "__state"), 1)  # TASK_INTERRUPTIBLE
        self._comm(t, spec.comm)
        self._list_add_tail(self.init_task + img.offsetof("task_struct", "tasks"),
                            t + img.offsetof("task_struct", "tasks"))
        self._list_add_tail(sig + img.offsetof("signal_struct", "thread_head"),
                            t + img.offsetof("task_struct", "thread_node"))
        self.tasks[spec.pid] = t
        if spec.vmas is not None:
            mm = self._mm(spec)
            img.put("task_struct", t, mm=mm, active_mm=mm)
            self.mms[spec.pid] = mm
        for i in range(1, spec.threads):
            th = img.alloc_struct("task_struct")
            img.put("task_struct", th, pid=spec.pid + i, tgid=spec.pid, real_parent=parent, signal=sig,
                    fs=self.fs, mm=img.r64(t + img.offsetof("task_struct", "mm")))
            self._comm(th, spec.comm)
            self._list_add_tail(sig + img.offsetof("signal_struct", "thread_head"),
                                th + img.offsetof("task_struct", "thread_node"))
        return t

    def _mm(self, spec: TaskSpec) -> int:
        img = self.img
        mm = img.alloc_struct("mm_struct")
        vmas = sorted(spec.vmas or [], key=lambda v: v.start)
        img.put("mm_struct", mm, map_count=len(vmas),
                total_vm=sum((v.end - v.start) >> 12 for v in vmas), start_brk=spec.start_brk, brk=spec.brk,
                start_stack=spec.start_stack, pgd=0, context__ctx_id=100 + spec.pid, context__tlb_gen=5)
        seq = spec.mm_lock_seq
        if self.layout == "6.0":
            img.put("mm_struct", mm, vmacache_seqnum=seq)
        if self.layout == "6.12":
            img.put("mm_struct", mm, mm_lock_seq=seq)
        elif self.layout == "6.15":
            img.put("mm_struct", mm, mm_lock_seq__sequence=seq)
        addrs = [self._vma(mm, v, seq) for v in vmas]
        self.vma_addrs[spec.pid] = addrs
        if self.layout == "6.0":
            off = img.offsetof("vm_area_struct", "vm_next")
            for a, b in zip(addrs, addrs[1:]):
                img.w64(a + off, b)
            img.put("mm_struct", mm, mmap=addrs[0] if addrs else 0)
            # mm_rb: a balanced tree of the same VMAs (find_vma()'s index)
            rb = img.offsetof("vm_area_struct", "vm_rb")

            def build(lo: int, hi: int, parent: int) -> int:
                if lo >= hi:
                    return 0
                mid = (lo + hi) // 2
                node = addrs[mid] + rb
                img.w64(node, parent | 1)  # __rb_parent_color: black
                img.w64(node + 16, build(lo, mid, node))  # rb_left
                img.w64(node + 8, build(mid + 1, hi, node))  # rb_right
                return node

            img.w64(mm + img.offsetof("mm_struct", "mm_rb"), build(0, len(addrs), 0))
        else:
            self.maple_nodes[spec.pid] = build_maple(img, mm + img.offsetof("mm_struct", "mm_mt"),
                                                      [(v.start, v.end - 1, a) for v, a in zip(vmas, addrs)],
                                                      self.layout == "6.15")
        return mm

    def _vma(self, mm: int, v: VmaSpec, mm_seq: int) -> int:
        img = self.img
        a = img.alloc(img.sizeof("vm_area_struct"), 64)
        fields = dict(vm_start=v.start, vm_end=v.end, vm_mm=mm, vm_flags=v.flags, vm_pgoff=v.pgoff)
        if v.path:
            fields["vm_file"] = self.file(v.path, v.ino, v.dev)
        else:
            fields["vm_pgoff"] = v.start >> 12
        if v.special:
            sm = img.alloc_struct("vm_special_mapping")
            img.put("vm_special_mapping", sm, name=self._cstring(v.special))
            fields.update(vm_ops=self.special_ops, vm_private_data=sm)
        if v.anon_name:
            n = img.alloc(len(v.anon_name) + 8, 8)
            img.wbytes(n + 4, v.anon_name.encode() + b"\0")
            fields["anon_name"] = n
        if self.layout == "6.12":
            fields.update(vm_lock_seq=mm_seq if v.write_locked else -1 & 0xFFFFFFFF,
                          vm_lock=img.alloc(64, 64), detached=int(v.detached))
        elif self.layout == "6.15":
            fields.update(vm_lock_seq=mm_seq if v.write_locked else 0xFFFFFFFF,
                          vm_refcnt__refs=(0 if v.detached else 1) if v.refcnt is None else v.refcnt)
        img.put("vm_area_struct", a, **fields)
        return a


def build_maple(img: Image, tree: int, entries: Sequence[Tuple[int, int, int]], flags_first: bool = False,
                leaf_fill: int = 10) -> List[int]:
    """Write a maple tree holding ``entries`` ((first, last, pointer),
    sorted, disjoint) at ``tree``; returns every node's address (leaves first)."""
    pieces: List[Tuple[int, int, int]] = []
    pos = 0
    for first, last, ptr in entries:
        if first > pos:
            pieces.append((pos, first - 1, 0))
        pieces.append((first, last, ptr))
        pos = last + 1
    if pos <= ULONG_MAX:
        pieces.append((pos, ULONG_MAX, 0))
    if not entries:
        img.put("maple_tree", tree, ma_root=0, ma_flags=0x1)
        return []
    nodes: List[int] = []
    level: List[Tuple[int, int, int, int]] = []  # (enode, lo, hi, node)
    piv_off = img.offsetof("maple_range_64", "pivot")
    slot_off = 128
    for i in range(0, len(pieces), leaf_fill):
        chunk = pieces[i:i + leaf_fill]
        node = img.alloc(256, 256)
        for j, (_lo, hi, ptr) in enumerate(chunk):
            if j < len(chunk) - 1:
                img.w64(node + piv_off + 8 * j, hi)
            img.w64(node + slot_off + 8 * j, ptr)
        img.w8(node + 248, len(chunk) - 1)
        nodes.append(node)
        level.append((node | 1 << 3 | 4, chunk[0][0], chunk[-1][1], node))
    height = 1
    while len(level) > 1:
        up = []
        for i in range(0, len(level), 10):
            chunk = level[i:i + 10]
            node = img.alloc(256, 256)
            for j, (enode, _lo, hi, child) in enumerate(chunk):
                if j < len(chunk) - 1:
                    img.w64(node + 8 + 8 * j, hi)
                img.w64(node + 80 + 8 * j, enode)
                img.w64(child, node | 0x6)  # parent pointer (slot bits below 0x100)
            img.w8(node + 240, len(chunk) - 1)
            nodes.append(node)
            up.append((node | 3 << 3 | 4, chunk[0][1], chunk[-1][2], node))
        level = up
        height += 1
    root_enode, _, _, root_node = level[0]
    img.w64(root_node, tree | 1)  # MA_ROOT_PARENT
    img.put("maple_tree", tree, ma_root=root_enode | 2, ma_flags=0x1 | height << 2)
    return nodes


def demo_process(layout: str) -> Tuple[TaskKernel, str]:
    """A kernel with a kernel thread and one process whose VMAs cover every
    name rule, plus, on 6.12/6.15 layouts, one VMA caught between munmap's
    gather and complete (detached, still in the tree, write-locked).
    Returns the kernel and the /proc/PID/maps text the process must give."""
    k = TaskKernel(layout)
    rw = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    rx = VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    vmas = [
        VmaSpec(0x400000, 0x401000, rx, pgoff=0, path="/usr/bin/prog", ino=1234),
        VmaSpec(0x401000, 0x403000, rx, pgoff=1, path="/usr/bin/prog", ino=1234),
        VmaSpec(0x600000, 0x621000, rw),  # heap
        VmaSpec(0x7F0000000000, 0x7F0000002000, rw, anon_name="buf"),
        VmaSpec(0x7F0000002000, 0x7F0000003000, rw, detached=True, write_locked=True),
        VmaSpec(0x7F0000010000, 0x7F0000011000, VM_READ | VM_MAYREAD | VM_MAYSHARE, path="/dev/shm/x y",
                ino=7, dev=(0 << 20) | 25),
        VmaSpec(0x7F0000020000, 0x7F0000022000, VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYEXEC, special="[vdso]"),
        VmaSpec(0x7FFC00000000, 0x7FFC00021000, rw | VM_GROWSDOWN),  # stack
    ]
    k.add_task(TaskSpec(2, "kthreadd", None, ppid=0))
    k.add_task(TaskSpec(100, "prog", vmas, ppid=1, threads=3, start_brk=0x600000, brk=0x621000,
                        start_stack=0x7FFC00020F00, mm_lock_seq=6))
    anon_named = "[anon:buf]"
    maps = (
        "00400000-00401000 r-xp 00000000 fe:01 1234                               /usr/bin/prog\n"
        "00401000-00403000 r-xp 00001000 fe:01 1234                               /usr/bin/prog\n"
        "00600000-00621000 rw-p 00000000 00:00 0                                  [heap]\n"
        f"7f0000000000-7f0000002000 rw-p 00000000 00:00 0                          {anon_named}\n"
        "7f0000002000-7f0000003000 rw-p 00000000 00:00 0 \n"
        "7f0000010000-7f0000011000 r--s 00000000 00:19 7                          /dev/shm/x y\n"
        "7f0000020000-7f0000022000 r-xp 00000000 00:00 0                          [vdso]\n"
        "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]\n"
    )
    return k, maps
