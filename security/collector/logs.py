"""Logging: rsyslog's forwarding and receiving (TLS, disk queues, where received records go),
logrotate's retention of them, which files keep auth events, and journald's storage."""

from __future__ import annotations

import os
import re

from security.collector.base import conf_dir, lines, num, read_files, texts_lines

_RS_BLOCK = re.compile(r"\b(action|input|module|template)\s*\((.*?)\)", re.S | re.I)
_RS_PARAM = re.compile(r'([\w.]+)\s*=\s*(?:"([^"]*)"|\[([^\]]*)\]|(\S+))')
_RS_SECURE = ("gtls", "ossl")
_ROTATE_PERIOD = {"daily": 1, "weekly": 7, "monthly": 30, "yearly": 365}
AUTH_FACILITIES = ("auth", "authpriv")


def gather_rsyslog() -> dict:
    return {
        "rsyslog": read_files(["/etc/rsyslog.conf", *conf_dir("/etc/rsyslog.d")]),
        "logrotate": read_files(["/etc/logrotate.conf", *conf_dir("/etc/logrotate.d", "")]),
        "journald": read_files(["/etc/systemd/journald.conf",
                                *conf_dir("/etc/systemd/journald.conf.d")]),
        "journal_dir": os.path.isdir("/var/log/journal"),
    }


def _rs_params(body: str) -> dict:
    params = {}
    for m in _RS_PARAM.finditer(body):
        value = m.group(2) if m.group(2) is not None else (
            m.group(3) if m.group(3) is not None else m.group(4))
        params[m.group(1).lower()] = value
    return params


def _rs_text(text: str) -> str:
    # Whole-line comments out; blocks may span lines.
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))


def logrotate_days(files: dict[str, str | None], prefix: str) -> int | None:
    """Days logrotate keeps the files under prefix (rotate x period, capped by maxage)."""
    best = None
    for text in files.values():
        for m in re.finditer(r"([^{}]*?)\{([^}]*)\}", _rs_text(text or "")):
            targets = m.group(1).split()
            if not any(t.startswith(prefix) for t in targets):
                continue
            body = m.group(2).split()
            period = next((_ROTATE_PERIOD[w] for w in body if w in _ROTATE_PERIOD), 7)
            rotate = next((int(body[i + 1]) for i, w in enumerate(body[:-1])
                           if w == "rotate" and body[i + 1].isdigit()), 0)
            days = rotate * period
            maxage = next((int(body[i + 1]) for i, w in enumerate(body[:-1])
                           if w == "maxage" and body[i + 1].isdigit()), None)
            if maxage is not None:
                days = min(days, maxage)
            best = days if best is None else min(best, days)
    return best


class _RsyslogConfig:
    """What rsyslog's files say, read in rsyslog's order (a legacy `$DefaultNetstreamDriver`
    applies to the `@@` lines after it, across files)."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.tls_targets: list[str] = []
        self.queued_targets: list[str] = []
        self.templates: dict[str, str] = {}
        self.receivers: list[dict] = []
        self.dynafiles: list[str] = []
        self.module_tls: dict = {}
        self.legacy_tls = False

    def legacy_lines(self, text: str) -> None:
        """Classic selector lines: `*.* @@host:port` forwards (TLS after the legacy driver)."""
        for line in lines(text):
            if re.match(r"\$DefaultNetstreamDriver\s+(gtls|ossl)\b", line, re.I):
                self.legacy_tls = True
            m = re.search(r"\s@@?(?:\([^)]*\))?([\w.\-:\[\]]+)", " " + line)
            if m and not line.startswith(("$", "module", "input", "action", "template")):
                target = m.group(1).split(":")[0]
                self.targets.append(target)
                if self.legacy_tls and "@@" in line:
                    self.tls_targets.append(target)

    def blocks(self, text: str) -> None:
        """RainerScript objects: template(), module(), input(), action()."""
        for m in _RS_BLOCK.finditer(_rs_text(text)):
            kind, params = m.group(1).lower(), _rs_params(m.group(2))
            if kind == "template" and "name" in params:
                self.templates[params["name"]] = params.get("string", "")
            elif kind == "module" and params.get("load") == "imtcp":
                self.module_tls = params
            elif kind == "input" and params.get("type") == "imtcp":
                self.receivers.append(params)
            elif kind == "action":
                self.action(params)

    def action(self, params: dict) -> None:
        if params.get("type") == "omfwd" and params.get("target"):
            target = params["target"]
            self.targets.append(target)
            if (params.get("streamdriver", "").lower() in _RS_SECURE
                    and params.get("streamdrivermode") == "1"
                    and params.get("streamdriverauthmode", "anon").lower() != "anon"):
                self.tls_targets.append(target)
            if (params.get("queue.type", "direct").lower() != "direct"
                    and params.get("queue.filename")):
                self.queued_targets.append(target)
        elif params.get("type") == "omfile" and params.get("dynafile"):
            self.dynafiles.append(params["dynafile"])

    def receiver_tls_ports(self) -> list[int | str]:
        """imtcp inputs that demand an authenticated TLS peer (input settings, else module's)."""
        ports = []
        for params in self.receivers:
            def get(key: str, params: dict = params) -> str:
                return params.get(key) or self.module_tls.get(key) or ""
            if (get("streamdriver.name").lower() in _RS_SECURE
                    and get("streamdriver.mode") == "1"
                    and get("streamdriver.authmode").lower() not in ("", "anon")):
                ports.append(num(params.get("port", "")))
        return sorted(set(ports), key=str)

    def receive_dirs(self) -> list[str]:
        """Where the received records are written: the static part of each dynaFile template."""
        return sorted({self.templates[name].split("%")[0].rstrip("/") for name in self.dynafiles
                       if self.templates.get(name, "").startswith("/")})


def file_create_mode(all_lines: list[str]) -> str | None:
    mode = None
    for line in all_lines:
        m = re.match(r"\$FileCreateMode\s+(0[0-7]{3})", line)
        if m:
            mode = m.group(1)
    return mode


def auth_log_files(all_lines: list[str]) -> list[str]:
    """Files a classic rsyslog selector line writes auth and authpriv messages to
    (`auth,authpriv.*  /var/log/auth.log`; `*.*` too; `authpriv.none` takes them out again)."""
    out = []
    for line in all_lines:
        m = re.match(r"([\w*,.;=!-]+)\s+-?(/\S+)$", line)
        if not m:
            continue
        covered: set[str] = set()
        for selector in m.group(1).split(";"):
            facilities, _, priority = selector.rpartition(".")
            names = set(facilities.split(",")) if facilities else set()
            if "*" in names:
                names |= set(AUTH_FACILITIES)
            names &= set(AUTH_FACILITIES)
            if priority == "none":
                covered -= names
            else:
                covered |= names
        if covered == set(AUTH_FACILITIES):
            out.append(m.group(2))
    return sorted(set(out))


def journald_persistent(files: dict[str, str | None], journal_dir: bool) -> bool:
    """journald keeps records on disk: Storage=persistent, or auto with /var/log/journal."""
    storage = "auto"
    for line in texts_lines(files):
        m = re.match(r"Storage\s*=\s*(\w+)", line)
        if m:
            storage = m.group(1).lower()
    return storage == "persistent" or (storage == "auto" and journal_dir)


def parse_rsyslog(read_data: dict) -> dict:
    files = read_data["rsyslog"]
    config = _RsyslogConfig()
    for text in files.values():
        if text is not None:
            config.legacy_lines(text)
            config.blocks(text)
    receive_dirs = config.receive_dirs()
    retention = [logrotate_days(read_data["logrotate"], d) for d in receive_dirs]
    all_lines = texts_lines(files)
    return {"configured": any(text is not None for text in files.values()),
            "forward_targets": sorted(set(config.targets)),
            "forward_tls_targets": sorted(set(config.tls_targets)),
            "forward_disk_queue_targets": sorted(set(config.queued_targets)),
            "receiver_tls_ports": config.receiver_tls_ports(),
            "receive_dirs": receive_dirs,
            "received_retention_days": (None if not retention or None in retention
                                        else min(retention)),
            "file_create_mode": file_create_mode(all_lines),
            "auth_log_files": auth_log_files(all_lines),
            "journald_persistent": journald_persistent(read_data["journald"],
                                                       read_data["journal_dir"])}


def fact_rsyslog() -> dict:
    return parse_rsyslog(gather_rsyslog())
