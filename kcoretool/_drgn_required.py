# SPDX-License-Identifier: LGPL-2.1-or-later
"""The oldest drgn kcoretool works with: the one the test suite runs with
besides the newest (tests/run.sh), and pyproject.toml's floor."""

from __future__ import annotations

import re
from typing import Tuple

from kcoretool.errors import KcoreToolError

__all__ = ("DRGN_MINIMUM", "DrgnVersionError", "require_drgn")

#: drgn 0.0.27-0.0.32 lack drgn.helpers.linux.kallsyms and Type.unaliased();
#: 0.0.33 fails in whatis; 0.1.0 passes the suite.
DRGN_MINIMUM = (0, 1, 0)


class DrgnVersionError(KcoreToolError, ImportError):
    """The installed drgn is older than kcoretool needs."""


def _version(text: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


def require_drgn() -> None:
    """Raise :class:`DrgnVersionError`, one line naming the needed version,
    when drgn is older than :data:`DRGN_MINIMUM`."""
    import drgn

    have = getattr(drgn, "__version__", "0")
    if _version(have) < DRGN_MINIMUM:
        need = ".".join(map(str, DRGN_MINIMUM))
        raise DrgnVersionError(f"kcoretool needs drgn >= {need}; this is drgn {have} "
                               f"(pip install -U 'drgn>={need}')")
