"""The site's pinned host keys: fetch (through the bastion), import, replace, and name a
changed key in one line.

Keys live in the connection's known_hosts, one line per host under its alias
(`HOST TYPE KEY`; the generated ssh_config's HostKeyAlias looks them up by that name, whatever
address or port the host is reached on). opsctl's transport, Ansible's ssh plugin and Mitogen
all read this file with StrictHostKeyChecking yes, so a key that changed is refused everywhere.
Parsing and fingerprints are pure; `scan` runs ssh.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from opsctl.connection import EXTERNAL_JUMP, Connection, resolve, write
from opsctl.errors import InvalidInput, OpsctlError, Problem
from opsctl.site.model import Site, require_hosts


class HostKeyUnknown(OpsctlError):
    exit_code = 1


@dataclass(frozen=True)
class HostKey:
    alias: str
    type: str
    key: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def line(self) -> str:
        return f"{self.alias} {self.type} {self.key}"


def fingerprint(key_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a base64 public key blob."""
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_known_hosts(text: str) -> list[tuple[list[str], str, str]]:
    """(names, type, key) per plain line; markers, hashed names and comments are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or line.startswith(("#", "@", "|")):
            continue
        names = [re.sub(r"^\[(.*)\]:\d+$", r"\1", n) for n in parts[0].split(",")]
        out.append((names, parts[1], parts[2]))
    return out


def pinned(conn: Connection) -> dict[str, list[HostKey]]:
    try:
        text = conn.known_hosts.read_text()
    except FileNotFoundError:
        return {}
    keys: dict[str, list[HostKey]] = {}
    for names, ktype, key in parse_known_hosts(text):
        keys.setdefault(names[0], []).append(HostKey(names[0], ktype, key))
    return keys


def save(conn: Connection, keys: dict[str, list[HostKey]]) -> None:
    """Rewrite the known_hosts file atomically, one host after another in the site's order."""
    order = conn.jump_order()
    lines = [k.line() for alias in sorted(keys, key=lambda a: (a not in order,
                                                                order.index(a) if a in order
                                                                else 0, a))
             for k in keys[alias]]
    conn.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    tmp = conn.known_hosts.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(conn.known_hosts)


def pin(conn: Connection, new: Iterable[HostKey]) -> None:
    """Pin the given keys, each replacing what was pinned for its host."""
    keys = pinned(conn)
    fresh: dict[str, list[HostKey]] = {}
    for key in new:
        fresh.setdefault(key.alias, []).append(key)
    save(conn, keys | fresh)


def unpin(conn: Connection, alias: str) -> None:
    keys = pinned(conn)
    keys.pop(alias, None)
    save(conn, keys)


def scan(conn: Connection, alias: str, timeout: float = 30) -> HostKey:
    """The key a host offers, fetched with ssh itself through its bastion (ssh-keyscan cannot
    jump): a throwaway known_hosts records it at key exchange, before any authentication."""
    write(conn)
    with tempfile.TemporaryDirectory(prefix="opsctl-trust-") as tmp:
        record = Path(tmp) / "known_hosts"
        argv = ["ssh", "-F", str(conn.ssh_config), "-o", f"UserKnownHostsFile={record}",
                "-o", "StrictHostKeyChecking=accept-new", "-o", "ControlMaster=no",
                "-o", "ControlPath=none", "-o", "PreferredAuthentications=none",
                alias, "true"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise HostKeyUnknown(f"{alias}: no answer within {timeout:.0f} s") from None
        found = parse_known_hosts(record.read_text()) if record.exists() else []
    if not found:
        last = (done.stderr.strip().splitlines() or [f"ssh exit {done.returncode}"])[-1]
        raise HostKeyUnknown(f"{alias}: could not fetch its host key ({last})")
    names, ktype, key = found[0]
    return HostKey(alias, ktype, key)


def import_file(conn: Connection, path: Path) -> list[HostKey]:
    """Keys gathered out of band (ssh-keyscan output, a known_hosts) matched to the site's
    hosts by name or address; lines for other machines are ignored."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from None
    by_name: dict[str, str] = {}
    for endpoint in ([conn.bastion] if conn.bastion else []) + list(conn.endpoints.values()):
        for name in (endpoint.name, endpoint.hostname, *endpoint.aliases):
            by_name[name] = endpoint.name
    found = []
    for names, ktype, key in parse_known_hosts(text):
        alias = next((by_name[n] for n in names if n in by_name), None)
        if alias:
            found.append(HostKey(alias, ktype, key))
    if not found:
        raise InvalidInput([Problem(str(path), "", "no key for any host of site "
                                    f"{conn.site} (by name or address)")])
    return found


# What ssh prints when a pinned key no longer matches (LogLevel ERROR still shows it).
_OFFERED = re.compile(r"key sent by the remote host is\s*\n?\s*(SHA256:[A-Za-z0-9+/]+)")


def changed_key_message(conn: Connection, alias: str, stderr: str) -> str | None:
    """One line naming the host and both fingerprints, when ssh refused a changed key."""
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" not in stderr and \
            "Host key verification failed" not in stderr:
        return None
    offered = _OFFERED.search(stderr)
    was = ", ".join(k.fingerprint for k in pinned(conn).get(alias, [])) or "none pinned"
    if offered is None and was == "none pinned":
        return (f"{alias}: host key not pinned; run `opsctl site trust {conn.site} "
                f"--limit {alias}` and compare its fingerprint")
    return (f"{alias}: host key changed (pinned {was}, offered "
            f"{offered.group(1) if offered else 'unknown'}); nothing was done on it. If it was "
            f"reinstalled: opsctl site trust {conn.site} --replace {alias}")


@dataclass
class TrustResult:
    pinned: list[HostKey]  # newly pinned (or replaced)
    unchanged: list[str]  # already pinned with the key they offer
    refused: list[str]  # the operator did not confirm


Confirm = Callable[[list[HostKey]], bool]


def _refuse_unknown(site_name: str, hosts: list[str], limit: list[str] | None,
                    replace: str | None) -> None:
    """--limit and --replace name hosts of the connection (Site.require_hosts' wording)."""
    require_hosts(site_name, hosts, limit or [], "--limit")
    require_hosts(site_name, hosts, [replace] if replace else [], "--replace")


def trust(conn: Connection, limit: list[str] | None = None, replace: str | None = None,
          known_hosts_file: Path | None = None,
          confirm: Confirm = lambda _keys: True) -> TrustResult:
    """Pin the hosts' keys: from a file gathered out of band, or fetched through the bastion
    and confirmed by fingerprint (bastions first: what sits behind them is reached through
    them, strictly). A host already pinned keeps its key unless it is `replace`d."""
    names = conn.jump_order()
    _refuse_unknown(conn.site, names, limit, replace)
    write(conn)
    if known_hosts_file is not None:
        keys = [k for k in import_file(conn, known_hosts_file)
                if not limit or k.alias in limit]
        if not confirm(keys):
            return TrustResult([], [], sorted({k.alias for k in keys}))
        pin(conn, keys)
        return TrustResult(keys, [], [])
    if replace:
        unpin(conn, replace)
        names = [replace]
    elif limit:
        names = [n for n in names if n in limit]
    result = TrustResult([], [], [])
    have = pinned(conn)
    # Bastions first, each confirmed and pinned before the hosts behind it are asked.
    jumps = {e.jump for e in conn.endpoints.values() if e.jump}
    for batch in ([n for n in names if n in jumps], [n for n in names if n not in jumps]):
        offered = []
        for alias in batch:
            key = scan(conn, alias)
            if any(k.key == key.key for k in have.get(alias, [])):
                result.unchanged.append(alias)
            elif have.get(alias):
                raise HostKeyUnknown(changed_key_message(
                    conn, alias, "REMOTE HOST IDENTIFICATION HAS CHANGED key sent by the "
                    f"remote host is {key.fingerprint}") or alias)
            else:
                offered.append(key)
        if not offered:
            continue
        if not confirm(offered):
            result.refused += [k.alias for k in offered]
            if batch and batch[0] in jumps:  # nothing behind an untrusted bastion is asked
                result.refused += [n for n in names if n not in jumps]
                break
            continue
        pin(conn, offered)
        result.pinned += offered
    return result


def trust_site(site: Site, via: str | None, limit: list[str], replace: str | None,
               known_hosts_file: Path | None, confirm: Confirm) -> TrustResult:
    """`opsctl site trust`: the site's connection, then `trust`. A name that is no host of
    the site (nor its external bastion) is refused before the connection is looked for."""
    site.require_hosts(limit, "--limit", also=[EXTERNAL_JUMP])
    site.require_hosts([replace] if replace else [], "--replace", also=[EXTERNAL_JUMP])
    return trust(resolve(site, via), limit, replace, known_hosts_file, confirm)
