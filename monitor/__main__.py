"""`python -m monitor --listen ADDR:PORT [--config FILE]`: run the agent in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from monitor.agent import make_server
from monitor.config import ConfigError


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--listen {value!r}: expected ADDRESS:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


# Without --listen (the monitor_agent role always passes it): the site's agent port by
# default. This package runs on hosts and cannot read the role's defaults, so it keeps a
# copy; tests/unit/test_one_source.py ties it to site.agent_port's and the role's default.
DEFAULT_LISTEN = ("127.0.0.1", 9110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor",
                                     description="opsctl's host monitoring agent")
    parser.add_argument("--listen", type=parse_listen, default=DEFAULT_LISTEN,
                        help="address:port to serve /metrics on (default "
                             f"{DEFAULT_LISTEN[0]}:{DEFAULT_LISTEN[1]})")
    parser.add_argument("--config", type=Path, help="agent configuration (JSON)")
    args = parser.parse_args(argv)
    try:
        server = make_server(*args.listen, args.config)
    except ConfigError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"monitor: cannot listen on {args.listen[0]}:{args.listen[1]}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    print(f"monitor: serving on {server.address[0]}:{server.address[1]}", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
