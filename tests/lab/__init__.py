"""kcoretool's real-kernel test lab.

Boots Debian's 6.1 and 6.12 kernels under QEMU (TCG), loads a test module
(tests/kmod) that creates vmalloc/vmap/vm_map_ram areas with known, tagged
contents, and exposes the live guest (``Guest.run``) plus vmcores captured
at a known moment (``Snapshot``).  See tests/lab/README.md.

Everything downloaded or built lives under the cache directory
(``KCORETOOL_LAB_CACHE``, default ``~/.cache/kcoretool/lab``).
"""

from __future__ import annotations

from .config import KERNELS, LabError, LabUnavailable, cache_dir

__all__ = ["KERNELS", "LabError", "LabUnavailable", "cache_dir"]
