"""The national Prometheus' end of the provinces' pushes (docs/national-view.md).

The access gateways (internet zone) take the provinces' remote writes, relabel them by
credential and queue them; this relay, on the monitoring host (management zone), fetches each
gateway's queue over the metrics port Prometheus already scrapes and writes every request
into the local Prometheus' remote-write receiver. The management zone opens every connection:
nothing in the internet zone reaches into it.

A request leaves a gateway's queue only once Prometheus has answered 2xx (stored) or 400 (it
can never be stored: out of bounds, say). On a 5xx or no answer it stays, and the relay tries
again next round. A request the relay sends twice stores the same samples twice, which
Prometheus takes as one.

    python3 -m monitor.national_relay --config /etc/prometheus/national-relay.json
    {"gateways": ["http://172.31.20.21:9112", ...],
     "prometheus": "http://172.31.10.11:9090/api/v1/write", "interval": 2}
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

WRITE_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                 "X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": "opsctl-relay"}
TIMEOUT = 10.0
log = logging.getLogger("national-relay")

# (gateway) -> (push id, body) or None when its queue is empty; raises OSError when unreachable
Fetch = Callable[[str], "tuple[str, bytes] | None"]
Post = Callable[[bytes], int]  # body -> Prometheus' status (OSError when unreachable)
Delete = Callable[[str, str], None]  # (gateway, push id)


@dataclass
class Round:
    relayed: int = 0
    dropped: int = 0  # Prometheus said 400: never storable
    unreachable: list[str] = field(default_factory=list)
    prometheus_down: bool = False


def relay_once(gateways: list[str], fetch: Fetch, post: Post, delete: Delete,
               limit: int = 200) -> Round:
    """Drain each gateway's queue into Prometheus, at most `limit` requests per gateway."""
    done = Round()
    for gateway in gateways:
        for _ in range(limit):
            try:
                head = fetch(gateway)
            except OSError:
                done.unreachable.append(gateway)
                break
            if head is None:
                break
            ident, body = head
            try:
                status = post(body)
            except OSError:
                done.prometheus_down = True
                return done
            if status >= 500 or status == 429:
                done.prometheus_down = True
                return done
            if 200 <= status < 300:
                done.relayed += 1
            else:
                done.dropped += 1
            try:
                delete(gateway, ident)
            except OSError:
                done.unreachable.append(gateway)
                break
    return done


def _fetch(gateway: str) -> tuple[str, bytes] | None:
    with urllib.request.urlopen(f"{gateway}/pushes/next", timeout=TIMEOUT) as answer:
        if answer.status == 204:
            return None
        return answer.headers["X-Push-Id"], answer.read()


def _post(url: str) -> Post:
    def post(body: bytes) -> int:
        request = urllib.request.Request(url, data=body, method="POST", headers=WRITE_HEADERS)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                answer.read()
                return answer.status
        except urllib.error.HTTPError as exc:
            log.warning("prometheus answered %s: %s", exc.code,
                        exc.read(300).decode("utf-8", "replace").strip())
            return exc.code
    return post


def _delete(gateway: str, ident: str) -> None:
    request = urllib.request.Request(f"{gateway}/pushes/{ident}", method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 404:  # gone already: another round took it
            raise OSError(f"{gateway}: DELETE answered {exc.code}") from exc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="national_relay")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = json.loads(args.config.read_text())
    gateways = [str(g).rstrip("/") for g in config["gateways"]]
    post = _post(str(config["prometheus"]))
    interval = float(config.get("interval", 2))
    while True:
        done = relay_once(gateways, _fetch, post, _delete)
        if done.dropped or done.unreachable or done.prometheus_down:
            log.info("relayed %d, dropped %d, unreachable %s, prometheus down: %s",
                     done.relayed, done.dropped, done.unreachable, done.prometheus_down)
        if not done.relayed:
            time.sleep(interval)


if __name__ == "__main__":
    main()
