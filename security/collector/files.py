"""Files: the owner and mode of the files the catalog names, and one bounded walk of the
filesystem for world-writable files and world-readable data dumps."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterable, Iterator

# Files whose owner and mode the catalog checks. The catalog may only name these.
STAT_FILES = (
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers",
    "/etc/ssh/sshd_config", "/etc/crontab", "/etc/cron.d", "/etc/cron.hourly",
    "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly", "/etc/login.defs",
    "/etc/audit/auditd.conf", "/etc/audit/rules.d", "/var/log/audit", "/var/log/auth.log",
    "/var/log/syslog", "/etc/security/pwquality.conf", "/etc/security/faillock.conf",
    "/etc/rsyslog.conf", "/boot/grub/grub.cfg",
)
# Where the walk for world-writable files looks, and for data dumps in home directories.
SYSTEM_DIRS = ("/etc", "/usr/bin", "/usr/sbin", "/usr/local", "/boot", "/opt")
SYSTEM_DEPTH = 12
HOME_DEPTH = 4
DUMP_SUFFIXES = (".sql", ".sql.gz", ".dump", ".csv", ".xls", ".xlsx", ".bak", ".tar.gz",
                 ".zip", ".json.gz")
WALK_SECONDS = 3.0
WALK_MAX_HITS = 50


# ---------------------------------------------------------------- files

def _user(uid: int) -> str:
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def _group(gid: int) -> str:
    try:
        import grp
        return grp.getgrgid(gid).gr_name
    except (KeyError, ImportError):
        return str(gid)


def gather_files() -> dict[str, dict]:
    """Per path: {"missing"}, {"error": strerror}, or its mode bits and owner and group names."""
    found: dict[str, dict] = {}
    for path in STAT_FILES:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            found[path] = {"missing": True}
            continue
        except OSError as exc:
            found[path] = {"error": exc.strerror}
            continue
        found[path] = {"mode": st.st_mode, "owner": _user(st.st_uid),
                       "group": _group(st.st_gid)}
    return found


def parse_files(found: dict[str, dict]) -> dict:
    result: dict[str, dict] = {}
    for path, st in found.items():
        if st.get("missing"):
            result[path] = {"exists": False}
        elif "error" in st:
            result[path] = {"error": f"{path}: {st['error']}"}
        else:
            result[path] = {"exists": True, "mode": f"{stat.S_IMODE(st['mode']):04o}",
                            "owner": st["owner"], "group": st["group"],
                            "is_dir": stat.S_ISDIR(st["mode"])}
    return result


def fact_files() -> dict:
    return parse_files(gather_files())


# ---------------------------------------------------------------- the walk

class BoundedWalk:
    """Walks directory trees without following symlinks until a shared deadline; `complete`
    turns false when the deadline stopped it before it had seen everything."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.complete = True

    def entries(self, tops: Iterable[str], max_depth: int) -> Iterator[tuple[str, int]]:
        """(path, st_mode) of every entry below each top, down to max_depth."""
        for top in tops:
            yield from self._tree(top, max_depth)

    def _tree(self, top: str, max_depth: int) -> Iterator[tuple[str, int]]:
        stack = [(top, 0)]
        while stack:
            if time.monotonic() > self.deadline:
                self.complete = False
                return
            path, depth = stack.pop()
            try:
                with os.scandir(path) as it:
                    for entry in it:
                        try:
                            if entry.is_symlink():
                                continue
                            mode = entry.stat(follow_symlinks=False).st_mode
                        except OSError:
                            continue
                        yield entry.path, mode
                        if stat.S_ISDIR(mode) and depth < max_depth:
                            stack.append((entry.path, depth + 1))
            except OSError:
                continue


def home_dirs() -> list[str]:
    """Where people and services leave files: root's home, /srv, /tmp and every /home/*."""
    homes = ["/root", "/srv", "/tmp"]
    with contextlib.suppress(OSError):
        homes += [os.path.join("/home", n) for n in os.listdir("/home")]
    return homes


def world_writable(entries: Iterable[tuple[str, int]]) -> tuple[list[str], list[str]]:
    """World-writable regular files, and world-writable directories without the sticky bit;
    the first WALK_MAX_HITS of each, sorted. Consumes every entry (the walk runs to its end)."""
    files: list[str] = []
    no_sticky: list[str] = []
    for path, mode in entries:
        if not mode & stat.S_IWOTH:
            continue
        if stat.S_ISREG(mode) and len(files) < WALK_MAX_HITS:
            files.append(path)
        elif stat.S_ISDIR(mode) and not mode & stat.S_ISVTX and len(no_sticky) < WALK_MAX_HITS:
            no_sticky.append(path)
    return sorted(files), sorted(no_sticky)


def readable_dumps(entries: Iterable[tuple[str, int]]) -> list[str]:
    """World-readable files named like a database or spreadsheet dump (first WALK_MAX_HITS)."""
    dumps: list[str] = []
    for path, mode in entries:
        if stat.S_ISREG(mode) and mode & stat.S_IROTH and \
                path.lower().endswith(DUMP_SUFFIXES) and len(dumps) < WALK_MAX_HITS:
            dumps.append(path)
    return sorted(dumps)


def gather_walk() -> dict:
    """The two passes of one walk, as lazy streams of (path, st_mode): the parse consumes them,
    so a large tree is never held in memory. Whether the walk finished is known only after."""
    walk = BoundedWalk(WALK_SECONDS)
    return {"system": walk.entries(SYSTEM_DIRS, SYSTEM_DEPTH),
            "homes": walk.entries(home_dirs(), HOME_DEPTH),
            "complete": lambda: walk.complete}


def parse_walk(read_data: dict) -> dict:
    """World-writable files and directories, world-readable dumps, and whether the walk saw
    every file (asked after both streams are consumed)."""
    files, no_sticky = world_writable(read_data["system"])
    dumps = readable_dumps(read_data["homes"])
    complete = read_data["complete"]()
    return {
        "complete": complete,
        # What checks that need every file read: true, or why not (then they are errors
        # unless a file already found decides them).
        "covered": True if complete else {
            "error": f"the filesystem walk stopped at its {WALK_SECONDS:g} s bound before "
                     "seeing every file: a clean result would not prove there is none"},
        "seconds_bound": WALK_SECONDS,
        "world_writable_files": files,
        "world_writable_dirs_without_sticky": no_sticky,
        "world_readable_dumps": dumps,
    }


def fact_walk() -> dict:
    """One bounded walk for every check that looks at the filesystem."""
    return parse_walk(gather_walk())
