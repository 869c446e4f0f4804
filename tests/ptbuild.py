"""Hand-built x86_64 page tables over sparse physical memory, for tests."""

import struct

P, RW, PSE = 1, 2, 0x80
NX = 1 << 63


class Phys:
    """Sparse physical memory of 4 KiB pages with a bump allocator for tables."""

    def __init__(self):
        self.pages = {}
        self.next = 0x100000
        self.reads = 0

    def alloc(self):
        addr = self.next
        self.next += 0x1000
        self.pages[addr] = bytearray(0x1000)
        return addr

    def write(self, addr, data):
        """Store data at a physical address (whole pages are created as needed)."""
        for off in range(0, len(data), 0x1000):
            page = (addr + off) & ~0xFFF
            self.pages.setdefault(page, bytearray(0x1000))
            chunk = data[off:off + 0x1000]
            self.pages[page][(addr + off) & 0xFFF:((addr + off) & 0xFFF) + len(chunk)] = chunk


    def set(self, table, idx, value):
        struct.pack_into("<Q", self.pages[table], idx * 8, value)

    def read(self, addr, size):
        """Physical read; a page that was never written is "not in the dump"."""
        from kcoretool.errors import AddressError

        self.reads += 1
        out = bytearray()
        while size > 0:
            page, off = addr & ~0xFFF, addr & 0xFFF
            k = min(size, 0x1000 - off)
            if page not in self.pages:
                raise AddressError(f"physical {addr:#x} is not in the dump", addr)
            out += self.pages[page][off:off + k]
            addr += k
            size -= k
        return bytes(out)


def build(levels=4, sme=0):
    m = Phys()
    root = m.alloc()
    shifts = ([48] if levels == 5 else []) + [39, 30, 21]

    def table_for(vaddr, stop_shift):
        t = root
        for shift in shifts:
            if shift == stop_shift:
                return t
            idx = (vaddr >> shift) & 511
            entry = struct.unpack_from("<Q", m.pages[t], idx * 8)[0]
            if not entry & P:
                new = m.alloc()
                m.set(t, idx, new | sme | P | RW)
                entry = new | P
            t = entry & ~(0xFFF | sme | NX) & ((1 << 52) - 1)
        return t

    def map4k(vaddr, phys):
        t = table_for(vaddr, None)
        m.set(t, (vaddr >> 12) & 511, phys | sme | P | RW | NX)

    def map2m(vaddr, phys):
        t = table_for(vaddr, 21)
        m.set(t, (vaddr >> 21) & 511, phys | sme | P | RW | PSE)

    def map1g(vaddr, phys):
        t = table_for(vaddr, 30)
        m.set(t, (vaddr >> 30) & 511, phys | sme | P | RW | PSE)

    return m, root, map4k, map2m, map1g


