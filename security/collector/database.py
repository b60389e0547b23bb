"""The database cluster's stack: PostgreSQL (its clusters' settings and pg_hba), Patroni's
REST API, etcd's listeners and TLS, and pgBackRest's repository."""

from __future__ import annotations

import os
import re
import shutil
import time

from security.collector.base import conf_dir, kv_file, lines, read, read_opt

PG_ETC = "/etc/postgresql"
PG_DATA = "/var/lib/postgresql"
PG_SETTING = re.compile(r"(\w+)\s*=?\s*'?([^'#]*)'?")
PG_WEAK_METHODS = ("trust", "password", "md5")
PGBACKREST_CONFIGS = ("/etc/pgbackrest/pgbackrest.conf", "/etc/pgbackrest.conf")
FULL_BACKUP = re.compile(r"\d{8}-\d{6}F")
ETCD_BINARY = "/usr/bin/etcd"
ETCD_ENV = "/etc/default/etcd"
PATRONI_CONFIGS = ("/etc/patroni/config.yml", "/etc/patroni/patroni.yml", "/etc/patroni/config.d")


# ---------------------------------------------------------------- postgresql

def pg_settings(texts: list[str | None]) -> dict[str, str]:
    """postgresql.conf-style files, in order (a later file wins) → {setting: value}."""
    conf: dict[str, str] = {}
    for text in texts:
        for line in lines(text or ""):
            m = PG_SETTING.match(line)
            if m:
                conf[m.group(1).lower()] = m.group(2).strip()
    return conf


def read_pg_cluster(name: str, conf_paths: list[str], hba_path: str | None,
                    data_dir: str | None = None) -> dict:
    """A cluster's configuration texts in the order PostgreSQL applies them, and its pg_hba.
    Which further files to read depends on what the first ones say (data_directory, hba_file)."""
    conf_texts = [read_opt(path) for path in conf_paths]
    # ALTER SYSTEM's file in the data directory overrides every other file.
    data_dir = pg_settings(conf_texts).get("data_directory") or data_dir
    if data_dir:
        conf_texts.append(read_opt(os.path.join(data_dir, "postgresql.auto.conf")))
    hba_path = pg_settings(conf_texts).get("hba_file") or hba_path
    return {"name": name, "conf": conf_texts,
            "hba": (read_opt(hba_path) or "") if hba_path else ""}


def gather_postgresql() -> list[dict]:
    clusters = []
    if os.path.isdir(PG_ETC):
        for version in sorted(os.listdir(PG_ETC)):
            for name in sorted(os.listdir(os.path.join(PG_ETC, version))):
                cdir = os.path.join(PG_ETC, version, name)
                clusters.append(read_pg_cluster(
                    f"{version}/{name}",
                    [os.path.join(cdir, "postgresql.conf"),
                     *conf_dir(os.path.join(cdir, "conf.d"))],
                    os.path.join(cdir, "pg_hba.conf"),
                    os.path.join(PG_DATA, version, name)))
    # Under Patroni there is no /etc/postgresql cluster: Patroni writes postgresql.conf into
    # the data directory (it names hba_file) from its own configuration.
    if os.path.isdir("/etc/patroni") and os.path.isdir(PG_DATA):
        for version in sorted(os.listdir(PG_DATA)):
            vdir = os.path.join(PG_DATA, version)
            if not os.path.isdir(vdir):
                continue
            for name in sorted(os.listdir(vdir)):
                conf = os.path.join(vdir, name, "postgresql.conf")
                if "patroni" in (read_opt(conf) or "").lower():
                    clusters.append(read_pg_cluster(f"{version}/{name} (patroni)", [conf],
                                                    os.path.join(vdir, name, "pg_hba.conf"),
                                                    os.path.join(vdir, name)))
    return clusters


def weak_hba(text: str) -> list[str]:
    """pg_hba lines that let a client in without a strong method, or without TLS from afar."""
    weak = set()
    for line in lines(text):
        f = line.split()
        if f and f[0] in ("local", "host", "hostssl", "hostnossl"):
            method = f[3] if f[0] == "local" else (f[4] if len(f) > 4 else "")
            if method in PG_WEAK_METHODS:
                weak.add(f"{f[0]} {method}" if f[0] != "local" or method != "trust"
                         else "local trust")
            if f[0] == "host" and method not in ("reject",) and "/" in f[3] and \
                    not f[3].startswith(("127.", "::1")):
                weak.add("host (not hostssl) for a remote address")
    return sorted(weak)


def pg_bool(value: str) -> str:
    """PostgreSQL's boolean spellings (on, true, yes, 1 and unique prefixes) as on / off."""
    v = value.strip().lower()
    if v in ("on", "1") or (v and ("true".startswith(v) or "yes".startswith(v))):
        return "on"
    return "off" if v in ("off", "0") or (v and ("false".startswith(v) or "no".startswith(v))) \
        else v


def parse_pg_cluster(cluster: dict) -> dict:
    conf = pg_settings(cluster["conf"])
    return {
        "name": cluster["name"],
        "password_encryption": conf.get("password_encryption", "scram-sha-256"),
        "ssl": conf.get("ssl", "off"),
        "log_connections": pg_bool(conf.get("log_connections", "off")),
        "log_disconnections": pg_bool(conf.get("log_disconnections", "off")),
        "log_statement": conf.get("log_statement", "none").lower(),
        "weak_hba": weak_hba(cluster["hba"]),
    }


def parse_postgresql(read_clusters: list[dict]) -> dict:
    clusters = [parse_pg_cluster(c) for c in read_clusters]
    return {
        "installed": bool(clusters),
        "clusters": [c["name"] for c in clusters],
        "password_encryption": sorted({c["password_encryption"] for c in clusters}),
        "ssl": sorted({c["ssl"] for c in clusters}),
        "weak_hba": sorted({w for c in clusters for w in c["weak_hba"]}),
        "log_connections": sorted({c["log_connections"] for c in clusters}),
        "log_disconnections": sorted({c["log_disconnections"] for c in clusters}),
        "log_statement": sorted({c["log_statement"] for c in clusters}),
    }


def fact_postgresql() -> dict:
    return parse_postgresql(gather_postgresql())


# ---------------------------------------------------------------- pgbackrest

def pgbackrest_repo(text: str) -> tuple[str | None, bool]:
    """The repository path pgbackrest.conf names, and whether it lies on another host."""
    repo = None
    remote_repo = False
    for line in lines(text):
        m = re.match(r"repo1-path\s*=\s*(\S+)", line)
        if m:
            repo = m.group(1)
        if line.startswith("repo1-host"):
            remote_repo = True
    return repo, remote_repo


def full_backup_mtimes(repo: str) -> list[float]:
    """The mtimes of the full backups under the repository (as many as could be read)."""
    mtimes = []
    backup_root = os.path.join(repo, "backup")
    try:
        for stanza in os.listdir(backup_root):
            sdir = os.path.join(backup_root, stanza)
            for name in os.listdir(sdir):
                if FULL_BACKUP.match(name):
                    mtimes.append(os.stat(os.path.join(sdir, name)).st_mtime)
    except OSError:
        pass
    return mtimes


def gather_pgbackrest() -> dict | None:
    """None when pgBackRest is not configured here."""
    conf_path = next((p for p in PGBACKREST_CONFIGS if os.path.exists(p)), None)
    if conf_path is None:
        return None
    text = read(conf_path)
    repo, remote_repo = pgbackrest_repo(text)
    here = bool(repo) and not remote_repo and os.path.isdir(str(repo))
    return {"conf": text, "repository_here": here,
            "backup_mtimes": full_backup_mtimes(str(repo)) if here else [],
            "now": time.time()}


def parse_pgbackrest(read_data: dict | None) -> dict:
    if read_data is None:
        return {"configured": False, "repository_here": False, "newest_backup_hours": None,
                "encrypted": False}
    newest = max(read_data["backup_mtimes"], default=None)
    return {
        "configured": True,
        "repository_here": read_data["repository_here"],
        "newest_backup_hours": int((read_data["now"] - newest) // 3600) if newest else None,
        "encrypted": "repo1-cipher-type" in read_data["conf"],
    }


def fact_pgbackrest() -> dict:
    return parse_pgbackrest(gather_pgbackrest())


# ---------------------------------------------------------------- etcd

def gather_etcd() -> dict | None:
    """What etcd's unit reads (Debian: /etc/default/etcd; a config file named by
    ETCD_CONFIG_FILE replaces every variable); None when etcd is not installed."""
    if not os.path.exists(ETCD_BINARY):
        return None
    env = etcd_env(read_opt(ETCD_ENV) or "")
    config = env.get("ETCD_CONFIG_FILE")
    return {"env": env, "config": config, "config_text": read(config) if config else None}


def etcd_env(text: str) -> dict[str, str]:
    return {k: str(v).strip().strip('"').strip("'") for k, v in kv_file(text, "=").items()}


def _etcd_result(where: str, get) -> dict:
    client = [u for u in get("listen-client-urls", "http://localhost:2379").split(",") if u]
    peer = [u for u in get("listen-peer-urls", "http://localhost:2380").split(",") if u]
    return {
        "installed": True,
        "config": where,
        "client_urls": client,
        "peer_urls": peer,
        "plain_urls": [u for u in client + peer if not u.strip().startswith(("https://",
                                                                              "unixs://"))],
        "client_cert_auth": get("client-cert-auth", "false").lower() == "true",
        "peer_client_cert_auth": get("peer-client-cert-auth", "false").lower() == "true",
        "cert_file": get("cert-file", "") or None,
        "peer_cert_file": get("peer-cert-file", "") or None,
    }


def parse_etcd_env(env: dict[str, str], where: str) -> dict:
    return _etcd_result(where, lambda key, default: env.get(
        "ETCD_" + key.upper().replace("-", "_"), default))


def parse_etcd_config(text: str, where: str) -> dict:
    """etcd's YAML config: top-level URL keys, and the two transport-security blocks."""
    values: dict[str, str] = {}
    block = ""
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        m = re.match(r"(\s*)([\w-]+):\s*(.*?)\s*$", raw)
        if not m:
            continue
        indent, key, value = m.group(1), m.group(2), m.group(3).strip("'\"")
        if not indent:
            block = key if not value else ""
            if value:
                values[key] = value
        elif block in ("client-transport-security", "peer-transport-security") and value:
            values[("peer-" if block.startswith("peer") else "") + key] = value
    return _etcd_result(where, lambda key, default: values.get(key, default))


def parse_etcd(read_data: dict | None) -> dict:
    if read_data is None:
        return {"installed": False, "config": None, "client_urls": [], "peer_urls": [],
                "plain_urls": [], "client_cert_auth": False, "peer_client_cert_auth": False,
                "cert_file": None, "peer_cert_file": None}
    if read_data["config"]:
        return parse_etcd_config(read_data["config_text"], read_data["config"])
    return parse_etcd_env(read_data["env"], ETCD_ENV)


def fact_etcd() -> dict:
    return parse_etcd(gather_etcd())


# ---------------------------------------------------------------- patroni

def gather_patroni() -> dict:
    """Patroni's configuration: a file, or a directory whose *.yml files Patroni merges in
    name order (later ones win)."""
    installed = shutil.which("patroni") is not None or os.path.exists("/usr/bin/patroni")
    files = []
    for path in PATRONI_CONFIGS:
        if os.path.isdir(path):
            files += conf_dir(path, ".yml") + conf_dir(path, ".yaml")
        elif os.path.isfile(path):
            files.append(path)
    return {"installed": installed, "files": {path: read(path) for path in files}}


def patroni_restapi(text: str) -> dict[str, str]:
    """The scalar keys of the top-level `restapi:` block of a Patroni YAML file."""
    out: dict[str, str] = {}
    inside, depth = False, None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip())
        if indent == 0:
            inside = raw.split(":")[0].strip() == "restapi"
            depth = None
            continue
        if not inside:
            continue
        depth = indent if depth is None else depth
        m = re.match(r"\s*([\w-]+):\s*(.*?)\s*$", raw)
        if m and indent == depth and m.group(2):
            out[m.group(1)] = m.group(2).strip("'\"")
    return out


def parse_patroni(read_data: dict) -> dict:
    """Patroni's REST API (8008) listener and TLS."""
    rest: dict[str, str] = {}
    for text in read_data["files"].values():
        rest.update(patroni_restapi(text))
    return {
        "installed": read_data["installed"],
        "config_files": list(read_data["files"]),
        "rest_listen": rest.get("listen"),
        "rest_certfile": rest.get("certfile"),
        "rest_keyfile": rest.get("keyfile"),
    }


def fact_patroni() -> dict:
    return parse_patroni(gather_patroni())
