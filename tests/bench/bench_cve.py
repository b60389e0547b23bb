"""Known-vulnerability evaluation: 7 hosts × every installed package against bookworm's data.

The real tracker file cannot be fetched on this machine, so the data is synthetic, of the
real shape and about the real size, generated deterministically (seed 14): 1,000 source
packages with 30 CVEs each on average (5-60), grouped by fixed version as Debian's advisories
group them, 10% "not affected" (fixed_version "0") and 10% open. Every source package of the
recorded control node (tests/unit/facts/control-node.json: 721 binaries, their real source
packages) is among them, so every installed package meets data; the rest is filler.

The 7 hosts are that package list, each with some packages left out and some source
packages older than the mirror's (so each host has findings of both kinds); the mirror's
Packages index carries every binary, some at a newer version than the hosts run.

Measured per run, in this process, with python-debian's caches cleared first (a scan is a new
process): reading the reduced data and the mirror's index (`opsctl.mirror.secdata.judge`),
then judging the 7 hosts (`debian_security` facts for each). Also once: reducing the tracker's
JSON (what `mirror build` does). No lab, no root, no network.

    .venv/bin/python tests/bench/bench_cve.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from opsctl.mirror.secdata import DATA_FILE, judge  # noqa: E402
from security import versions  # noqa: E402
from security.debsec import reduce_tracker  # noqa: E402

RECORDED = ROOT / "tests" / "unit" / "facts" / "control-node.json"
URGENCIES = ["high", "medium", "medium", "low", "low", "low", "not yet assigned",
             "unimportant"]
HOSTS = ("mon1", "lb1", "app1", "app2", "db1", "db2", "bak1")


def control_node() -> tuple[dict[str, str], dict[str, list[str]]]:
    packages = json.loads(RECORDED.read_text())["facts"]["packages"]
    return packages["installed"], packages["sources"]


def tracker(rng: random.Random, sources: dict[str, str], total: int = 1000) -> dict:
    """{source: {CVE: {description, scope, releases: {bookworm: {...}}}}}, the real shape."""
    names = sorted(sources)
    filler = [f"synthetic-src{i:04d}" for i in range(total - len(names))]
    out: dict[str, dict] = {}
    serial = 0
    for name in names + filler:
        current = sources.get(name, f"{rng.randint(1, 9)}.{rng.randint(0, 30)}-{rng.randint(1, 9)}")
        cves: dict[str, dict] = {}
        count = rng.randint(5, 60)
        fixes = max(1, count // rng.randint(2, 4))  # an advisory fixes several CVEs at once
        fixed_versions = [f"{current}~pre{n}" for n in range(fixes - 1)] + \
            [f"{current}+sec{rng.randint(1, 3)}" if rng.random() < 0.3 else current]
        for _ in range(count):
            serial += 1
            cve = f"CVE-{rng.randint(2005, 2026)}-{serial:05d}"
            roll = rng.random()
            if roll < 0.1:
                rel = {"status": "resolved", "fixed_version": "0", "urgency": "unimportant"}
            elif roll < 0.2:
                rel = {"status": rng.choice(["open", "undetermined"]),
                       "urgency": rng.choice(URGENCIES)}
            else:
                rel = {"status": "resolved", "fixed_version": rng.choice(fixed_versions),
                       "urgency": rng.choice(URGENCIES)}
            rel["repositories"] = {"bookworm": current}
            cves[cve] = {"description": "synthetic entry " + "x" * rng.randint(40, 300),
                         "scope": rng.choice(["local", "remote"]),
                         "releases": {"bookworm": rel,
                                      "bullseye": {"status": "resolved", "fixed_version": "0",
                                                   "urgency": "low", "repositories": {}}}}
        out[name] = cves
    return out


def mirror_index(installed: dict[str, str], sources: dict[str, list[str]],
                 rng: random.Random) -> str:
    stanzas = []
    for binary, version in sorted(installed.items()):
        src, src_version = sources[binary]
        if rng.random() < 0.2:
            src_version, version = f"{src_version}+sec1", f"{version}+sec1"
        stanzas.append(f"Package: {binary}\nSource: {src} ({src_version})\nVersion: {version}\n"
                       f"Architecture: amd64\nFilename: ./{binary}_{version}_amd64.deb\n"
                       "Size: 123456\nSHA256: " + "0" * 64 + "\n")
    return "\n".join(stanzas)


def hosts(installed: dict[str, str], sources: dict[str, list[str]],
          rng: random.Random) -> list[dict]:
    out = []
    for _ in HOSTS:
        keep = {b: v for b, v in installed.items() if rng.random() > 0.1}
        behind = {s for s, _ in sources.values() if rng.random() < 0.05}
        src = {b: [sources[b][0], sources[b][1] + ("~old" if sources[b][0] in behind else "")]
               for b in keep}
        out.append({"count": len(keep), "installed": keep, "sources": src})
    return out


def run_once(repo: Path, fleet: list[dict]) -> tuple[float, float, int, int]:
    versions.parse.cache_clear()
    versions.compare_versions.cache_clear()
    t0 = time.perf_counter()
    security = judge(repo)
    t1 = time.perf_counter()
    facts = [security(p) for p in fleet]
    t2 = time.perf_counter()
    assert all("error" not in f for f in facts), facts[0]
    in_mirror = sum(f["counts"]["fixed_in_mirror_cves"] for f in facts)
    not_in = sum(f["counts"]["fix_not_in_mirror_cves"] for f in facts)
    return t1 - t0, t2 - t1, in_mirror, not_in


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(14)
    installed, sources = control_node()
    source_versions = {s: v for s, v in sources.values()}
    raw = tracker(rng, source_versions)
    raw_bytes = json.dumps(raw).encode()
    fleet = hosts(installed, sources, rng)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        t0 = time.perf_counter()
        doc = reduce_tracker(json.loads(raw_bytes), fetched="2026-12-01T02:00:00+00:00",
                             source="synthetic")
        reduce_s = time.perf_counter() - t0
        (repo / DATA_FILE).write_text(json.dumps(doc, separators=(",", ":")))
        (repo / "Packages").write_text(mirror_index(installed, sources, rng))
        cves = sum(len(c) for by in doc["fixed"].values() for c in by.values())
        print(f"data: {len(raw)} source packages, {sum(len(c) for c in raw.values())} CVE "
              f"entries ({len(raw_bytes) / 1e6:.1f} MB tracker JSON); reduced: {cves} fixed "
              f"CVEs ({(repo / DATA_FILE).stat().st_size / 1e6:.1f} MB)")
        print(f"hosts: {len(fleet)}, {sum(p['count'] for p in fleet)} installed packages in "
              f"all; reducing the tracker's JSON (mirror build): {reduce_s:.2f} s")
        runs = [run_once(repo, fleet) for _ in range(args.runs)]
    load = [r[0] for r in runs]
    judge_s = [r[1] for r in runs]
    total = [r[0] + r[1] for r in runs]
    print(f"findings per run: {runs[0][2]} CVEs with the fix in the mirror, {runs[0][3]} "
          "with the fix not in the mirror (7 hosts)")
    for label, values in (("read data + mirror index", load), ("judge 7 hosts", judge_s),
                          ("total", total)):
        print(f"{label:26s} median {statistics.median(values):6.3f} s   runs "
              + " ".join(f"{v:.3f}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
