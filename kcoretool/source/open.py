"""
Opening a core
--------------

:func:`open_core` says what a file is -- from its first bytes, never its
name -- and opens it as the matching :class:`~kcoretool.source.core.Core`:
an ELF core (/proc/kcore, ELF vmcores) or a kdump-compressed file.  Open
failures become one line saying why and what to do.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import IO, Optional, Union

from kcoretool.errors import AccessError, CoreFormatError
from kcoretool.source.core import KCORE_PATH, Core
from kcoretool.source.elfcore import ElfCore
from kcoretool.source.kdump import KdumpCore

__all__ = ("open_core", "sniff")

# Overridable by tests: where the kernel reports its lockdown mode.
LOCKDOWN_PATH = "/sys/kernel/security/lockdown"

KDUMP_SIGNATURE = b"KDUMP   "
# makedumpfile's flattened format starts with this, NUL-padded to 16 bytes.
FLATTENED_SIGNATURE = b"makedumpfile"
ELF_MAGIC = b"\x7fELF"


def _lockdown_mode() -> Optional[str]:
    """The active lockdown mode ("none", "integrity", "confidentiality"), if known."""
    try:
        with open(LOCKDOWN_PATH) as f:
            text = f.read()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return None


def _open_error(path: str, err: OSError) -> Exception:
    """Turn an open() failure into one line saying why and what to do."""
    is_kcore = os.path.abspath(path) == KCORE_PATH
    if isinstance(err, FileNotFoundError):
        if is_kcore:
            return AccessError(
                f"{KCORE_PATH} does not exist: this kernel was built without "
                "CONFIG_PROC_KCORE; analyse a vmcore instead with core_path=PATH"
            )
        return AccessError(f"{path}: no such file; give the path of a vmcore or {KCORE_PATH}")
    if isinstance(err, IsADirectoryError):
        return AccessError(f"{path}: is a directory; give the path of a vmcore or {KCORE_PATH}")
    if err.errno in (errno.EACCES, errno.EPERM):
        if is_kcore:
            mode = _lockdown_mode()
            if mode == "confidentiality":
                return AccessError(
                    f"cannot open {KCORE_PATH}: the kernel is locked down "
                    "(lockdown=confidentiality forbids /proc/kcore); "
                    "analyse a vmcore taken with kdump instead"
                )
            if os.geteuid() != 0:
                return AccessError(
                    f"cannot open {KCORE_PATH}: permission denied; "
                    "run as root (needs CAP_SYS_RAWIO)"
                )
            return AccessError(
                f"cannot open {KCORE_PATH}: permission denied although running as root; "
                "the process lacks CAP_SYS_RAWIO (a container?)"
            )
        return AccessError(f"{path}: permission denied; check the file's permissions")
    return AccessError(f"{path}: cannot open: {os.strerror(err.errno or 0) or err}")


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def sniff(head: bytes) -> str:
    """Say what a file is from its first bytes: "elf", "kdump", "flattened",
    "empty" or "unknown"."""
    if not head:
        return "empty"
    if head.startswith(KDUMP_SIGNATURE):
        return "kdump"
    if head.startswith(FLATTENED_SIGNATURE):
        return "flattened"
    if head.startswith(ELF_MAGIC):
        return "elf"
    return "unknown"


def open_core(source: Union[str, os.PathLike[str], IO[bytes]] = KCORE_PATH) -> Core:
    """Open /proc/kcore, an ELF vmcore or a kdump-compressed file.

    ``source`` is a path or a binary file object (positioned anywhere; it
    must support seek).  Raises :class:`~kcoretool.errors.KcoreToolError`
    with a one-line message for anything that is not a readable core.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            st = os.stat(path)
        except OSError as e:
            raise _open_error(path, e) from None
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            # A FIFO would block the open itself; a device has no size to check.
            raise AccessError(f"{path}: not a regular file ({_file_type(st.st_mode)}); "
                              f"give the path of a vmcore or {KCORE_PATH}")
        try:
            f: IO[bytes] = open(path, "rb")
        except OSError as e:
            raise _open_error(path, e) from None
        owned = True
    else:
        f = source
        path = getattr(source, "name", "<file>")
        if not isinstance(path, str):
            path = "<file>"
        owned = False
    try:
        try:
            f.seek(0)
            head = f.read(16)
        except OSError as e:
            raise AccessError(f"{path}: cannot read: {e.strerror or e}") from None
        what = sniff(head)
        if what == "elf":
            return ElfCore(f, path, owned=owned)
        if what == "kdump":
            core = KdumpCore(path, f)
            if owned:
                f.close()
            return core
        if what == "flattened":
            raise CoreFormatError(
                f"{path}: is a makedumpfile flattened file; convert it first with "
                f"`makedumpfile -R {os.path.basename(path)}.kdump < {path}`"
            )
        if what == "empty":
            raise CoreFormatError(f"{path}: is empty; give the path of a vmcore or {KCORE_PATH}")
        raise CoreFormatError(
            f"{path}: is not a core (no ELF, KDUMP or makedumpfile signature); "
            f"give the path of a vmcore or {KCORE_PATH}"
        )
    except BaseException:
        if owned:
            f.close()
        raise
