"""A bounded HTTPS load client for the lab, run inside the `public` namespace:

    ip netns exec NS python3 loadgen.py URL --ca CA --count N --seconds T [--threads K]
                                        [--stop-file F] [--out F.json] [--follow-ca]

Standard library only (it runs with the machine's python3). Keep-alive is off: every request
is its own TLS connection with `Connection: close`, so a request can only fail because the
platform failed it, never because an idle keep-alive connection was closed under it during a
balancer reload (a client-side race every HTTP client must retry around). It stops at N
requests, after T seconds, or when the stop file appears, whichever comes first, and prints
(or writes) one JSON summary: counts, failures with their reasons, versions seen, and each
request's (start offset, latency, ok) for percentiles. With --follow-ca it trusts the CA
file as it is at each request (read again when it changes), as a client given the site's
trust bundle during a CA rollover does.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


class Trust:
    """The TLS context of the CA file; with `follow`, made again when the file changes."""

    def __init__(self, path: str, follow: bool) -> None:
        self.path, self.follow, self.lock = path, follow, threading.Lock()
        self.stamp = os.stat(path).st_mtime_ns
        self.current = ssl.create_default_context(cafile=path)

    def context(self) -> ssl.SSLContext:
        if self.follow:
            with self.lock:
                stamp = os.stat(self.path).st_mtime_ns
                if stamp != self.stamp:
                    self.stamp, self.current = stamp, ssl.create_default_context(cafile=self.path)
        return self.current


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--stop-file", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--follow-ca", action="store_true")
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    lock = threading.Lock()
    trust = Trust(args.ca, args.follow_ca)

    issued = 0
    samples: list[tuple[float, float, bool]] = []
    failures: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    start = time.monotonic()
    deadline = start + args.seconds

    def take() -> bool:
        nonlocal issued
        with lock:
            if issued >= args.count or time.monotonic() >= deadline:
                return False
            if args.stop_file and issued % 50 == 0 and os.path.exists(args.stop_file):
                return False
            issued += 1
            return True

    def worker() -> None:
        while take():
            t0 = time.monotonic()
            ok, reason, version = False, "", ""
            try:
                conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443,
                                                   timeout=10, context=trust.context())
                conn.request("GET", parts.path or "/", headers={"Connection": "close"})
                response = conn.getresponse()
                body = response.read()
                conn.close()
                if response.status == 200:
                    ok = True
                    try:
                        version = json.loads(body).get("version", "")
                    except ValueError:
                        version = ""
                else:
                    reason = f"HTTP {response.status}"
            except Exception as exc:  # noqa: BLE001 - every failure counts, by its kind
                reason = f"{type(exc).__name__}: {exc}"[:120]
            t1 = time.monotonic()
            with lock:
                samples.append((round(t0 - start, 4), round(t1 - t0, 5), ok))
                if ok:
                    versions[version] += 1
                else:
                    failures[reason] += 1

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = {"requests": len(samples), "ok": sum(1 for s in samples if s[2]),
               "failed": sum(1 for s in samples if not s[2]),
               "failures": dict(failures), "versions": dict(versions),
               "seconds": round(time.monotonic() - start, 2), "samples": samples}
    text = json.dumps(summary)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
