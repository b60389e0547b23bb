"""opsctl's monitoring agent against Debian's prometheus-node-exporter, side by side.

Both run on this machine on loopback; scrapes alternate between them so that load on the
machine hits both alike. Per exporter: scrape latency p50/p99, payload size, series count,
RSS, and CPU time per scrape read from /proc/PID/stat (steadier than latency on a shared
machine). node_exporter runs with its default collectors.

    .venv/bin/python tests/bench/bench_agent.py --scrapes 200 --node-exporter PATH

PATH: the binary from Debian's package, e.g.
    apt-get download prometheus-node-exporter && dpkg-deb -x prometheus-node-exporter_*.deb x
    → x/usr/bin/prometheus-node-exporter
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def wait_ready(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"not ready: {url}")


def scrape(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    return time.perf_counter() - start, body


def series(body: bytes) -> int:
    return sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--node-exporter", required=True)
    parser.add_argument("--long", type=int, default=0,
                        help="then this many more agent scrapes, to see RSS stay flat")
    args = parser.parse_args()
    agent_port, node_port = free_port(), free_port()
    procs = {
        "opsctl agent": subprocess.Popen(
            [sys.executable, "-m", "monitor", "--listen", f"127.0.0.1:{agent_port}"],
            stderr=subprocess.DEVNULL),
        "node_exporter": subprocess.Popen(
            [args.node_exporter, f"--web.listen-address=127.0.0.1:{node_port}"],
            stderr=subprocess.DEVNULL),
    }
    urls = {"opsctl agent": f"http://127.0.0.1:{agent_port}/metrics",
            "node_exporter": f"http://127.0.0.1:{node_port}/metrics"}
    try:
        for url in urls.values():
            wait_ready(url)
        for name in urls:  # warm up
            scrape(urls[name])
        latency: dict[str, list[float]] = {n: [] for n in urls}
        cpu: dict[str, float] = {n: cpu_seconds(procs[n].pid) for n in urls}
        size: dict[str, int] = {}
        count: dict[str, int] = {}
        for _ in range(args.scrapes):
            for name, url in urls.items():
                took, body = scrape(url)
                latency[name].append(took)
                size[name], count[name] = len(body), series(body)
        cpu = {n: cpu_seconds(procs[n].pid) - cpu[n] for n in urls}
        print(f"# {' '.join(sys.argv)}")
        print(f"{'':14s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU ms/scrape':>14s} "
              f"{'bytes':>8s} {'series':>7s} {'RSS MB':>7s}")
        for name in urls:
            ordered = sorted(latency[name])
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            print(f"{name:14s} {statistics.median(ordered) * 1000:8.1f} {p99 * 1000:8.1f} "
                  f"{cpu[name] / args.scrapes * 1000:14.1f} {size[name]:8d} {count[name]:7d} "
                  f"{rss_mb(procs[name].pid):7.1f}")
        a, n = "opsctl agent", "node_exporter"
        print(f"ratios agent/node_exporter: p50 "
              f"{statistics.median(latency[a]) / statistics.median(latency[n]):.2f}x, "
              f"CPU per scrape {cpu[a] / cpu[n]:.2f}x")
        if args.long:
            before = rss_mb(procs[a].pid)
            for _ in range(args.long):
                scrape(urls[a])
            print(f"agent RSS after {args.scrapes} scrapes {before:.1f} MB, after "
                  f"{args.scrapes + args.long} more {rss_mb(procs[a].pid):.1f} MB")
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
