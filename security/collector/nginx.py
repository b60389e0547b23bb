"""The web front (nginx): where it listens, with or without TLS, and which TLS versions it
offers."""

from __future__ import annotations

import os
import re

from security.collector.base import lines, read_opt

NGINX_ETC = "/etc/nginx"
# Unset, nginx offers its built-in default: Debian 12's nginx 1.22 offers TLSv1 and TLSv1.1
# too (only 1.23.4 and later default to TLSv1.2 TLSv1.3).
NGINX_DEFAULT_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def gather_nginx() -> list[str | None] | None:
    """The text of every *.conf under /etc/nginx and every file in a sites-enabled directory,
    in walk order; None when nginx has no configuration here."""
    if not os.path.isdir(NGINX_ETC):
        return None
    texts = []
    for root, _dirs, names in os.walk(NGINX_ETC):
        for n in names:
            if not n.endswith((".conf",)) and "sites-enabled" not in root:
                continue
            texts.append(read_opt(os.path.join(root, n)))
    return texts


def parse_nginx(texts: list[str | None] | None) -> dict:
    if texts is None:
        return {"installed": False, "ssl_listen": False, "plain_listen": [], "ssl_protocols": [],
                "ssl_protocols_set": False}
    listens: list[str] = []
    protocols: set[str] = set()
    for text in texts:
        for line in lines(text or ""):
            m = re.match(r"listen\s+([^;]+);", line)
            if m:
                listens.append(m.group(1))
            m = re.match(r"ssl_protocols\s+([^;]+);", line)
            if m:
                protocols.update(m.group(1).split())
    plain = [entry for entry in listens if "ssl" not in entry.split()
             and not re.search(r"(^|:)(80)$", entry.split()[0])]
    return {
        "installed": True,
        "ssl_listen": any("ssl" in entry.split() for entry in listens),
        "plain_listen": plain,
        "ssl_protocols": sorted(protocols) or list(NGINX_DEFAULT_PROTOCOLS),
        "ssl_protocols_set": bool(protocols),
    }


def fact_nginx() -> dict:
    return parse_nginx(gather_nginx())
