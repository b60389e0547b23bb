"""Run on a host of a component by `opsctl deploy` (`python3 -c`, stdlib only): ask URL until
it answers STATUS or TIMEOUT seconds pass. Asked on the host itself, since the control node
may not reach application ports. Prints one line saying what was seen; exits 0 when healthy,
1 when not.

    health_wait.py --url http://ADDRESS:PORT/PATH --status 200 --timeout 30
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request

POLL_SECONDS = 0.25


def answer(url: str) -> tuple[int | None, str]:
    """(the status URL answers, why there was none)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def wait(url: str, want: int, limit: float) -> tuple[bool, str]:
    deadline, last = time.monotonic() + limit, "no answer"
    while True:
        code, why = answer(url)
        if code == want:
            return True, f"healthy: {url} answered {code}"
        last = why if code is None else f"{url} answered {code}, expected {want}"
        if time.monotonic() >= deadline:
            return False, f"unhealthy after {limit:g}s: {last}"
        time.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="health-wait")
    parser.add_argument("--url", required=True)
    parser.add_argument("--status", type=int, required=True, help="the healthy answer")
    parser.add_argument("--timeout", type=float, required=True, help="seconds")
    args = parser.parse_args(argv)
    ok, said = wait(args.url, args.status, args.timeout)
    print(said)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
