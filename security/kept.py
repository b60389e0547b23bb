"""What the scan derives from its own sources, kept like bytecode: in a __pycache__ beside the
sources, named by the hash of everything it is made from, made again when any of that
changes. A kept file that cannot be read or written only costs making it again; one that
cannot be loaded (a half-written or older format) is made again and replaced."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def digest(paths: Iterable[Path]) -> str:
    """The hash of the files' names and contents, in the order given."""
    h = hashlib.sha256()
    for path in paths:
        data = path.read_bytes()
        h.update(f"{path.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:32]


def kept(cache: Path, name: str, made_from: str, make: Callable[[], T],
         dump: Callable[[T], bytes], load: Callable[[bytes], T]) -> T:
    """`make()`, or what an earlier call kept in `cache` for the same `made_from` digest."""
    path = cache / f"{name}-{made_from}"
    with contextlib.suppress(Exception):  # any unreadable kept file: make it again
        return load(path.read_bytes())
    value = make()
    with contextlib.suppress(OSError):
        cache.mkdir(exist_ok=True)
        tmp = cache / f".{path.name}.{os.getpid()}"
        tmp.write_bytes(dump(value))
        os.replace(tmp, path)
        for old in cache.glob(f"{name}-*"):
            if old != path:
                old.unlink()
    return value
