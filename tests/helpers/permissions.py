"""File permissions that deny, also to root: `permissions_enforced()` clears CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
from this thread's effective capabilities (the kernel's `capset`), so that a file with mode 000 is refused with
EACCES by the kernel itself, as it is for any user; they come back when the block ends (they stay permitted).

    path.chmod(0o000)
    with permissions_enforced():
        run_cli(["convert", "--checkpoint_path", str(path), ...], capsys)   # the kernel refuses the read

A user who is not root needs nothing: the block does nothing then. Capabilities belong to a thread, and the commands
under test read their files in the calling thread.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

_CAPABILITY_VERSION_3 = 0x20080522
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


class CapabilitiesNotChangeable(Exception):
    """capget / capset failed here (not Linux, or a seccomp profile that forbids them)."""


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "capget") or not hasattr(libc, "capset"):
        raise CapabilitiesNotChangeable("this C library has no capget / capset")
    return libc


def _call(function, header: _Header, data) -> None:
    if function(ctypes.byref(header), data) != 0:
        number = ctypes.get_errno()
        raise CapabilitiesNotChangeable(f"{function.__name__}: {os.strerror(number)}")


@contextmanager
def permissions_enforced() -> Iterator[None]:
    """File permission bits bind this thread, root included, inside the block (see the module docstring)."""
    if os.geteuid() != 0:
        yield
        return
    libc = _libc()
    header, data = _Header(_CAPABILITY_VERSION_3, 0), (_Data * 2)()
    _call(libc.capget, header, data)
    saved = data[0].effective
    data[0].effective = saved & ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    _call(libc.capset, header, data)
    try:
        yield
    finally:
        data[0].effective = saved
        _call(libc.capset, _Header(_CAPABILITY_VERSION_3, 0), data)


__all__ = ["CapabilitiesNotChangeable", "permissions_enforced"]
