# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Debug info
----------

Where the kernel's types and symbols come from, between the core
(:mod:`kcoretool.source`) and the kernel walks (:mod:`kcoretool.kernel`):

- :mod:`~kcoretool.debuginfo.plan`: DWARF or BTF, decided from files and
  VMCOREINFO alone (no drgn: ``info`` stays fast), and the standard places a
  vmlinux lives;
- :mod:`~kcoretool.debuginfo.btf`: the BTF parser (bytes in, dataclasses out);
- :mod:`~kcoretool.debuginfo.btf_types`: BTF as drgn types;
- :mod:`~kcoretool.debuginfo.kallsyms`: symbols the way ``%pS`` prints them;
- :mod:`~kcoretool.debuginfo.btfkernel`: a drgn Program fed from BTF and
  kallsyms when there is no vmlinux.

Nothing is imported here, so importing the plan does not import drgn.
"""
