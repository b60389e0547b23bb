"""Job specifications as data, validated without pydantic (hosts have only the stdlib).

A jobs file is JSON (the role writes it from the site's `jobs:` list, keeping the jobs of the
host's groups):

    {"jobs": [{"name": "backup-full", "command": ["pgbackrest", "--stanza=main", ...],
               "schedule": "0 1 * * *", "timeout": "4h", "retries": 1, ...}],
     "actions": {"compliance-scan": ["python3", "-m", "..."]},
     "cluster_lock": {"dsn": "host=... dbname=operational user=opsctl_scheduler"}}

Every problem is reported as `FILE: KEY: reason`, one per line, all of them at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.cron import Cron, CronError, parse

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
CONCURRENCY = ("forbid", "replace", "allow")
MISSED = ("skip", "run-once")
SINGLETON = ("cluster",)
RETRIES_MAX = 20
# Built-in actions: what they are for. The jobs file maps each to the argv that performs it on
# the host (the component that provides it installs it); the site validates names against this.
ACTIONS = {
    "compliance-scan": "graded-protection scan of this host; writes the monitor's compliance file",
    "extract-desensitised": "copy from classified into operational with ID numbers and names "
                            "masked (the database issue provides the extract)",
}
JOB_KEYS = {"name", "description", "group", "command", "action", "schedule", "timezone",
            "timeout", "retries", "backoff", "jitter", "concurrency", "missed", "singleton",
            "enabled", "user"}
USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
FILE_KEYS = {"jobs", "actions", "cluster_lock", "output_tail_kib", "retention"}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SpecError(ValueError):
    """One or more problems in a jobs file, each `FILE: KEY: reason`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Backoff:
    base: float = 30.0
    max: float = 600.0


@dataclass(frozen=True)
class JobSpec:
    name: str
    schedule: str
    command: tuple[str, ...] | None = None
    action: str | None = None
    group: str | None = None
    description: str = ""
    timezone: str = "Asia/Shanghai"
    timeout: float = 3600.0
    retries: int = 0
    backoff: Backoff = Backoff()
    jitter: float = 0.0
    concurrency: str = "forbid"
    missed: str = "skip"
    singleton: str | None = None
    user: str | None = None  # the account it runs as; None: the agent's own
    enabled: bool = True

    @property
    def cron(self) -> Cron:
        return parse(self.schedule)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name, "schedule": self.schedule, "timezone": self.timezone,
            "timeout": self.timeout, "retries": self.retries,
            "backoff": {"base": self.backoff.base, "max": self.backoff.max},
            "jitter": self.jitter, "concurrency": self.concurrency, "missed": self.missed,
            "enabled": self.enabled,
        }
        if self.command is not None:
            data["command"] = list(self.command)
        if self.action is not None:
            data["action"] = self.action
        if self.group is not None:
            data["group"] = self.group
        if self.singleton is not None:
            data["singleton"] = self.singleton
        if self.user is not None:
            data["user"] = self.user
        if self.description:
            data["description"] = self.description
        return data


@dataclass(frozen=True)
class Retention:
    max_age_days: float = 90.0
    max_runs_per_job: int = 1000


@dataclass(frozen=True)
class JobsFile:
    jobs: tuple[JobSpec, ...]
    actions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lock_dsn: str | None = None
    output_tail_kib: int = 16
    retention: Retention = Retention()

    def job(self, name: str) -> JobSpec | None:
        return next((j for j in self.jobs if j.name == name), None)

    def argv(self, job: JobSpec) -> tuple[str, ...] | None:
        """What to execute for a job: its command, or its action's installed argv."""
        if job.command is not None:
            return job.command
        return self.actions.get(job.action or "")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like `90`, `90s`, `5m`, `4h`, `1d`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration (seconds, or a number with s/m/h/d)")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return seconds


Bad = Callable[[str, str], None]  # bad(key, reason): report one problem of a job


def parse_job(data: object, where: str, problems: list[str]) -> JobSpec | None:
    """Validate one job mapping; append `where.key: reason` problems; None if invalid."""
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping")
        return None
    start = len(problems)

    def bad(key: str, reason: str) -> None:
        problems.append(f"{where}.{key}: {reason}")

    for check in _JOB_CHECKS:
        check(data, bad)
    if len(problems) > start:
        return None
    return _job(data)


def _check_keys(data: dict, bad: Bad) -> None:
    for key in sorted(set(data) - JOB_KEYS):
        bad(key, "unknown key")


def _check_name(data: dict, bad: Bad) -> None:
    name = data.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        bad("name", f"required; lower-case letters, digits, - and _ (got {name!r})")


def _check_schedule(data: dict, bad: Bad) -> None:
    schedule = data.get("schedule")
    if not isinstance(schedule, str):
        bad("schedule", "required: a cron expression")
        return
    try:
        parse(schedule)
    except CronError as exc:
        bad("schedule", str(exc))


def _check_command_or_action(data: dict, bad: Bad) -> None:
    command, action = data.get("command"), data.get("action")
    if (command is None) == (action is None):
        bad("command", "give exactly one of command (argv list) or action (built-in name)")
    elif command is not None and (not isinstance(command, list) or not command
                                  or not all(isinstance(a, str) for a in command)):
        bad("command", "expected a non-empty list of strings (argv, no shell)")
    elif action is not None and action not in ACTIONS:
        bad("action", f"unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})")


def _check_timezone(data: dict, bad: Bad) -> None:
    timezone = data.get("timezone", JobSpec.timezone)
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        bad("timezone", f"unknown time zone {timezone!r}")


def _check_durations(data: dict, bad: Bad) -> None:
    for key in ("timeout", "jitter"):
        try:
            seconds = parse_duration(data.get(key, getattr(JobSpec, key)))
        except ValueError as exc:
            bad(key, str(exc))
            continue
        if key == "timeout" and seconds == 0:
            bad("timeout", "must be more than 0")


def _check_retries(data: dict, bad: Bad) -> None:
    retries = data.get("retries", JobSpec.retries)
    if (not isinstance(retries, int) or isinstance(retries, bool)
            or not 0 <= retries <= RETRIES_MAX):
        bad("retries", f"expected a whole number 0-{RETRIES_MAX} (got {retries!r})")


def _check_backoff(data: dict, bad: Bad) -> None:
    backoff_raw = data.get("backoff", {})
    if not isinstance(backoff_raw, dict) or set(backoff_raw) - {"base", "max"}:
        bad("backoff", "expected a mapping with base and max (durations)")
        return
    try:
        backoff = _backoff(backoff_raw)
    except ValueError as exc:
        bad("backoff", str(exc))
        return
    if backoff.max < backoff.base:
        bad("backoff.max", f"{backoff.max:g}s is less than base {backoff.base:g}s")


def _check_choices(data: dict, bad: Bad) -> None:
    for key, allowed in (("concurrency", CONCURRENCY), ("missed", MISSED)):
        if data.get(key, getattr(JobSpec, key)) not in allowed:
            bad(key, f"expected one of {', '.join(allowed)} (got {data.get(key)!r})")
    singleton = data.get("singleton")
    if singleton is not None and singleton not in SINGLETON:
        bad("singleton", f"expected 'cluster' or nothing (got {singleton!r})")


def _check_enabled_user_group(data: dict, bad: Bad) -> None:
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        bad("enabled", f"expected true or false (got {enabled!r})")
    user = data.get("user")
    if user is not None and (not isinstance(user, str) or not USER.match(user)):
        bad("user", f"expected an account name (got {user!r})")
    group = data.get("group")
    if group is not None and not isinstance(group, str):
        bad("group", "expected a group name")


# Each check reports its keys' problems, in the order they are reported.
_JOB_CHECKS: tuple[Callable[[dict, Bad], None], ...] = (
    _check_keys, _check_name, _check_schedule, _check_command_or_action, _check_timezone,
    _check_durations, _check_retries, _check_backoff, _check_choices, _check_enabled_user_group)


def _backoff(raw: dict) -> Backoff:
    return Backoff(parse_duration(raw.get("base", Backoff.base)),
                   parse_duration(raw.get("max", Backoff.max)))


def _job(data: dict) -> JobSpec:
    """The JobSpec of a job mapping that passed every check (defaults from JobSpec)."""
    command = data.get("command")
    return JobSpec(
        name=data["name"], schedule=data["schedule"],
        command=tuple(command) if command else None, action=data.get("action"),
        group=data.get("group"), description=str(data.get("description", "")),
        timezone=str(data.get("timezone", JobSpec.timezone)),
        timeout=parse_duration(data.get("timeout", JobSpec.timeout)),
        retries=data.get("retries", JobSpec.retries),
        backoff=_backoff(data.get("backoff", {})),
        jitter=parse_duration(data.get("jitter", JobSpec.jitter)),
        concurrency=data.get("concurrency", JobSpec.concurrency),
        missed=data.get("missed", JobSpec.missed), singleton=data.get("singleton"),
        user=data.get("user"), enabled=data.get("enabled", JobSpec.enabled))


def parse_jobs_file(data: object, file: str) -> JobsFile:
    """A jobs file's settings, each checked by its own step; SpecError names every problem."""
    if not isinstance(data, dict):
        raise SpecError([f"{file}: (root): expected a mapping with a jobs list"])
    problems: list[str] = []
    for key in sorted(set(data) - FILE_KEYS):
        problems.append(f"{file}: {key}: unknown key (known: {', '.join(sorted(FILE_KEYS))})")
    jobs = _file_jobs(data, file, problems)
    actions = _file_actions(data, file, problems)
    dsn = _file_lock_dsn(data, file, problems)
    if dsn is None and any(j.singleton == "cluster" for j in jobs):
        problems.append(f"{file}: cluster_lock: a singleton: cluster job needs cluster_lock.dsn")
    tail = data.get("output_tail_kib", 16)
    if not isinstance(tail, int) or isinstance(tail, bool) or not 1 <= tail <= 1024:
        problems.append(f"{file}: output_tail_kib: expected 1-1024")
        tail = 16
    retention = _file_retention(data, file, problems)
    if problems:
        raise SpecError(problems)
    return JobsFile(tuple(jobs), actions, dsn, tail, retention)


def _file_jobs(data: dict, file: str, problems: list[str]) -> list[JobSpec]:
    raw_jobs = data.get("jobs", [])
    if not isinstance(raw_jobs, list):
        problems.append(f"{file}: jobs: expected a list")
        return []
    jobs: list[JobSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_jobs):
        job = parse_job(raw, f"{file}: jobs[{i}]", problems)
        if job is None:
            continue
        if job.name in seen:
            problems.append(f"{file}: jobs[{i}].name: duplicate job name {job.name!r}")
        seen.add(job.name)
        jobs.append(job)
    return jobs


def _file_actions(data: dict, file: str, problems: list[str]) -> dict[str, tuple[str, ...]]:
    actions_raw = data.get("actions", {})
    if not isinstance(actions_raw, dict):
        problems.append(f"{file}: actions: expected a mapping of action name to argv")
        return {}
    actions: dict[str, tuple[str, ...]] = {}
    for name, argv in actions_raw.items():
        if name not in ACTIONS:
            problems.append(f"{file}: actions.{name}: unknown action")
        elif not isinstance(argv, list) or not argv or not all(
                isinstance(a, str) for a in argv):
            problems.append(f"{file}: actions.{name}: expected a non-empty argv list")
        else:
            actions[name] = tuple(argv)
    return actions


def _file_lock_dsn(data: dict, file: str, problems: list[str]) -> str | None:
    lock = data.get("cluster_lock")
    if lock is None:
        return None
    if not isinstance(lock, dict) or not isinstance(lock.get("dsn"), str):
        problems.append(f"{file}: cluster_lock.dsn: expected a libpq connection string")
        return None
    return lock["dsn"]


def _file_retention(data: dict, file: str, problems: list[str]) -> Retention:
    ret_raw = data.get("retention", {})
    if not isinstance(ret_raw, dict) or set(ret_raw) - {"max_age_days", "max_runs_per_job"}:
        problems.append(f"{file}: retention: expected max_age_days and max_runs_per_job")
        return Retention()
    age = ret_raw.get("max_age_days", 90)
    count = ret_raw.get("max_runs_per_job", 1000)
    if not isinstance(age, int | float) or age <= 0:
        problems.append(f"{file}: retention.max_age_days: expected a positive number")
    elif not isinstance(count, int) or count < 1:
        problems.append(f"{file}: retention.max_runs_per_job: expected a positive number")
    else:
        return Retention(float(age), count)
    return Retention()


def load_jobs_file(path: Path) -> JobsFile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except json.JSONDecodeError as exc:
        raise SpecError([f"{path}: line {exc.lineno}: not JSON: {exc.msg}"]) from None
    return parse_jobs_file(data, str(path))
