"""What every fact module shares: the error a fact group raises, reading the host (files,
directories, commands), and the small text parsers most groups use.

Readers (`read`, `read_opt`, `read_files`, `conf_dir`, `run`) are the only way the collector
touches the host; everything else here is pure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

SCHEMA = "opsctl-facts/1"


class FactError(Exception):
    """A fact group could not be gathered; the message says why."""


# ---------------------------------------------------------------- reading the host

def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        raise FactError(f"{path}: no such file") from None
    except OSError as exc:
        raise FactError(f"{path}: {exc.strerror}") from None


def read_opt(path: str) -> str | None:
    try:
        return read(path)
    except FactError:
        return None


def read_files(paths: list[str]) -> dict[str, str | None]:
    """{path: text, or None when absent or unreadable}, in the order given."""
    return {path: read_opt(path) for path in paths}


def run(argv: list[str], timeout: float = 10) -> tuple[int, str, str]:
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        raise FactError(f"{argv[0]}: command not found")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FactError(f"{' '.join(argv)}: timed out after {timeout:g}s") from None
    except OSError as exc:
        raise FactError(f"{argv[0]}: {exc.strerror}") from None
    return proc.returncode, proc.stdout, proc.stderr


def conf_dir(directory: str, suffix: str = ".conf") -> list[str]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(suffix))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names]


# ---------------------------------------------------------------- small pure parsers

def lines(text: str) -> list[str]:
    """A configuration file's effective lines: stripped, without blanks and # comments."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def texts_lines(texts: dict[str, str | None]) -> list[str]:
    """The effective lines of several files, in order; an absent file has none."""
    return [line for text in texts.values() for line in lines(text or "")]


def num(value: str) -> int | str:
    # "022" stays a string: it is an octal mode, and its leading zero means something.
    return int(value) if re.fullmatch(r"-?(0|[1-9]\d*)", value) else value


def kv_file(text: str, sep: str | None = None) -> dict[str, int | str]:
    result: dict[str, int | str] = {}
    for line in lines(text):
        if sep:
            if sep not in line:
                continue
            key, value = line.split(sep, 1)
        else:
            parts = line.split(None, 1)
            key, value = parts[0], parts[1] if len(parts) > 1 else ""
        result[key.strip()] = num(value.strip())
    return result


def days_since(mtime: float | None, now: float) -> int | None:
    """Whole days from a file's mtime to now; no file (or the epoch itself): None."""
    return int((now - mtime) // 86400) if mtime else None
