"""glibc's allocator: the C library, and freed memory given back to the system.

``idp serve`` fixes glibc's mmap and trim thresholds at 32 MiB, for argon2's buffer
(serve.py, auth/passwords.py). glibc then returns a heap's free pages only once 32 MiB lie
free at its top, so what a worker frees below that stays resident for good: the garbage of
its start (imports, the app's construction) and of a word list's build (auth/policy.py).
``give_back`` returns those pages where such a burst has just been freed.

    glibc()      the C library with malloc_trim, mallopt, malloc, free typed; None elsewhere
    give_back()  collect garbage, then malloc_trim(0)
"""

from __future__ import annotations

import ctypes
import functools
import gc


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc, else None (musl, macOS: nothing to give back)."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc's own symbol)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
    except (AttributeError, OSError):
        return None
    return libc


def give_back() -> None:
    """Return the pages of freed blocks to the system now (``malloc_trim(0)``: the free
    pages inside every arena, and the main heap's free top), after a garbage collection."""
    libc = glibc()
    if libc is None:
        return
    gc.collect()
    libc.malloc_trim(0)
