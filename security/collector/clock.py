"""Time synchronisation: the NTP servers chrony or systemd-timesyncd use, and whether this host
is the site's own time source."""

from __future__ import annotations

import re

from security.collector.base import conf_dir, read_files, texts_lines


def gather_time() -> dict:
    return {"chrony": read_files(["/etc/chrony/chrony.conf", *conf_dir("/etc/chrony/conf.d"),
                                  *conf_dir("/etc/chrony/sources.d", ".sources")]),
            "timesyncd": read_files(["/etc/systemd/timesyncd.conf",
                                     *conf_dir("/etc/systemd/timesyncd.conf.d")])}


def parse_time(read_data: dict) -> dict:
    servers: list[str] = []
    serves, local_clock = False, False
    for line in texts_lines(read_data["chrony"]):
        f = line.split()
        if f[0] in ("server", "pool", "peer") and len(f) > 1:
            servers.append(f[1])
        # The site's own time source on an air-gapped node: it serves others (`allow`)
        # from its own clock (`local stratum N`).
        serves = serves or f[0] == "allow"
        local_clock = local_clock or f[0] == "local"
    for line in texts_lines(read_data["timesyncd"]):
        m = re.match(r"NTP\s*=\s*(.*)", line)
        if m:
            servers.extend(m.group(1).split())
    return {"servers": sorted(set(servers)), "serves_others": serves,
            "local_clock": local_clock}


def fact_time() -> dict:
    return parse_time(gather_time())
