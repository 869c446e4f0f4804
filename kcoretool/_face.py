# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Package faces
-------------

A package's public names are the ``__all__`` of the submodules it faces,
read from their source (never imported for it) and imported on first use
(PEP 562): ``import kcoretool.kernel.vmflags`` does not import drgn, and a
name added to a submodule's ``__all__`` is on its package's face with no
second list to keep in step.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from typing import Any, Callable, Dict, List, Sequence, Tuple

__all__ = ("face",)


def _all_of(module: str) -> Tuple[str, ...]:
    """A module's ``__all__``, read from its source."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"no module {module}")
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), spec.origin)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                 for t in node.targets)):
            return tuple(ast.literal_eval(node.value))
    raise ImportError(f"{module} has no __all__")


def face(package: str, homes: Sequence[str],
         own: Callable[[], Dict[str, Any]]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, facing the ``__all__`` of
    its submodules ``homes``; ``own`` gives the package's own globals."""
    table: Dict[str, str] = {}

    def names() -> Dict[str, str]:
        if not table:
            for home in homes:
                for name in _all_of(f"{package}.{home}"):
                    if table.get(name, home) != home:
                        raise ImportError(f"{package}: {name} is in both {table[name]} and {home}")
                    table[name] = home
        return table

    def getattr_(name: str) -> Any:
        if name == "__all__":
            return tuple(sorted(names()))
        if name == "_HOME":
            return dict(names())
        home = names().get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    def dir_() -> List[str]:
        return sorted({*own(), *names()})

    return getattr_, dir_
