"""`opsctl check` against OpenSCAP 1.3.7 and Lynis 3.0.8 on the same lab host, in one run.

Needs a running lab (`opsctl up --site SITE`, hardened or not) and, on the control node,
Debian 12's `openscap-scanner` and `lynis` packages: the script says which are missing and
installs them with `--install` (it changes nothing else on the machine). Bookworm's
ssg-debian has no Debian 12 datastream, so the script takes trixie's ssg-debian
(`ssg-debian12-ds.xml`) with `apt-get download` through private apt lists and `dpkg -x`
into the cache directory: nothing is installed and the machine's apt sources are untouched.

What runs where (the fairest way without changing the machine's own state):
- opsctl: `opsctl check --site SITE --limit HOST --format json` (one SSH session, the
  collector on the host, evaluation here), and the whole fleet with `--site SITE`;
- OpenSCAP: `OSCAP_PROBE_ROOT=ROOT oscap xccdf eval --profile P` (what upstream's
  `oscap-chroot` does; Debian does not ship that wrapper) against the host container's root
  filesystem (its overlay mount) from the control node; the OVAL probes that read the
  running system (sysctl, processes, systemd units) therefore see the control node's kernel
  and systemd, not the container's, which is one source of disagreement;
- OpenSCAP again, inside the host (the issue's setting), then once more with `linux-base`
  installed: SSG's `machine` platform is "package linux-base is installed", which a container
  lacks, so without it most rules are "not applicable" and cost nothing. The host gets
  `openscap-scanner` the way a lab host gets any package, from opsctl's mirror server: the
  script resolves what the host lacks against the host's own dpkg status, puts those
  packages in a signed flat repository under `<mirror>/bench/openscap/`, installs from it,
  and purges it all afterwards. It changes the host under test for the run's duration: use
  a throwaway site (`opsctl site new`);
- Lynis: `lynis audit system` inside the host (Lynis is shell scripts: copied over SSH
  into /tmp on the host, run from there with its log and report in /tmp).

Then the verdicts of the three tools on the settings they all test are printed side by side
(tests/bench/check_equivalents.yml says which checks, rules and Lynis tests are the same).

    .venv/bin/python tests/bench/bench_check.py --site SITE --host db1 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from opsctl.site.model import load_site

ROOT = Path(__file__).resolve().parents[2]
OPSCTL = [sys.executable, "-m", "opsctl"]
XCCDF = "{http://checklists.nist.gov/xccdf/1.2}"
RULE = "xccdf_org.ssgproject.content_rule_"
PROFILE = "xccdf_org.ssgproject.content_profile_"
EQUIVALENTS = Path(__file__).with_name("check_equivalents.yml")


def cache_dir() -> Path:
    return Path(os.environ.get("OPSCTL_CACHE_DIR", "/var/cache/opsctl")) / "bench"


def state_dir() -> Path:
    return Path(os.environ.get("OPSCTL_STATE_DIR", "/var/lib/opsctl"))


def run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, **kw)


def timed(argv: list[str], **kw) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    done = run(argv, **kw)
    return time.monotonic() - start, done


# ---------------------------------------------------------------- tools

def ensure_packages(install: bool) -> None:
    missing = [p for p in ("openscap-scanner", "lynis")
               if "install ok installed" not in run(
                   ["dpkg-query", "-W", "-f=${Status}", p]).stdout]
    if not missing:
        return
    if not install:
        sys.exit(f"bench_check: missing Debian packages {' '.join(missing)}: "
                 f"apt-get install {' '.join(missing)} (or pass --install)")
    print(f"bench_check: installing {' '.join(missing)} (apt-get)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                   check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                   stdout=subprocess.DEVNULL)


def debian12_datastream() -> Path:
    """trixie's ssg-debian12-ds.xml, unpacked (never installed) into the cache."""
    base = cache_dir() / "ssg-trixie"
    ds = base / "x/usr/share/xml/scap/ssg/content/ssg-debian12-ds.xml"
    if ds.exists():
        return ds
    print("bench_check: fetching trixie's ssg-debian (apt-get download, private lists)",
          file=sys.stderr)
    (base / "lists/partial").mkdir(parents=True, exist_ok=True)
    (base / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    sources = base / "sources.list"
    sources.write_text("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                       "http://deb.debian.org/debian trixie main\n")
    opts = ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={base / 'lists'}", "-o", f"Dir::Cache={base / 'cache'}"]
    subprocess.run(["apt-get", *opts, "update", "-q"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", *opts, "download", "ssg-debian"], check=True, cwd=base,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deb = next(base.glob("ssg-debian_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(base / "x")], check=True)
    return ds


# ---------------------------------------------------------------- the three scanners

def opsctl_check(site: str, limit: str | None) -> tuple[float, dict]:
    argv = [*OPSCTL, "check", "--site", site, "--format", "json"]
    if limit:
        argv += ["--limit", limit]
    # As a user runs it: with Python's bytecode cache (this machine's shell turns it off).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    seconds, done = timed(argv, cwd=ROOT, env=env)
    if done.returncode not in (0, 1):
        sys.exit(f"opsctl check failed: {done.stderr.strip()}")
    return seconds, json.loads(done.stdout)


TAILORED = "xccdf_opsctl_profile_equivalents"


def equivalent_rules() -> list[str]:
    return sorted({r for item in yaml.safe_load(EQUIVALENTS.read_text())["equivalents"]
                   for r in item.get("oscap", [])})


def tailoring(ds: Path, base: str, out: Path) -> Path:
    """A tailoring file: `base` plus every rule check_equivalents.yml names."""
    rules = equivalent_rules()
    selects = "\n".join(f'    <xccdf:select idref="{RULE}{r}" selected="true"/>' for r in rules)
    path = out / "tailoring.xml"
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<xccdf:Tailoring xmlns:xccdf="http://checklists.nist.gov/xccdf/1.2"
    id="xccdf_opsctl_tailoring_equivalents">
  <xccdf:benchmark href="{ds}"/>
  <xccdf:version time="2026-01-01T00:00:00">1</xccdf:version>
  <xccdf:Profile id="{TAILORED}" extends="{PROFILE}{base}">
    <xccdf:title>{base} and the rules opsctl's checks have an equivalent of</xccdf:title>
{selects}
  </xccdf:Profile>
</xccdf:Tailoring>
""")
    return path


def verdicts(results: ET.Element) -> dict[str, str]:
    """{rule: result} from an XCCDF results document."""
    return {rr.get("idref", "").replace(RULE, ""): rr.findtext(f"{XCCDF}result") or ""
            for rr in results.iter(f"{XCCDF}rule-result")}


def evaluated(results: dict[str, str]) -> int:
    """Rules OpenSCAP actually judged (selected and applicable)."""
    return sum(1 for v in results.values() if v not in ("notselected", "notapplicable"))


def oscap(root: Path, ds: Path, profile: str, out: Path,
          tailoring_file: Path | None = None) -> tuple[float, dict[str, str]]:
    results = out / f"oscap-{profile.rsplit('_', 1)[-1]}.xml"
    # What upstream's oscap-chroot wrapper does (Debian does not ship it): the probes read
    # the files under OSCAP_PROBE_ROOT.
    argv = ["oscap", "xccdf", "eval"]
    if tailoring_file:
        # oscap 1.3.7 leaves the tailoring's added selections out of a whole-profile run;
        # naming each rule with --rule evaluates them.
        argv += ["--tailoring-file", str(tailoring_file), "--profile", profile,
                 *(a for r in equivalent_rules() for a in ("--rule", RULE + r))]
    else:
        argv += ["--profile", PROFILE + profile]
    seconds, done = timed([*argv, "--results", str(results), str(ds)],
                          env=dict(os.environ, OSCAP_PROBE_ROOT=str(root)))
    if done.returncode not in (0, 2):  # 2: some rule failed
        sys.exit(f"oscap failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return seconds, verdicts(ET.parse(results).getroot())


def lab_ssh(site: str, host: str, command: str, stdin: bytes | None = None,
            ) -> subprocess.CompletedProcess[bytes]:
    """A shell command as root on a lab host, through opsctl's transport (the lab's admin
    and its sudo), with ssh's result shape."""
    from opsctl.lab.ssh import transport  # noqa: PLC0415

    done = transport(load_site(site)).run(host, ["sh", "-c", command], stdin or b"",
                                          timeout=600)
    return subprocess.CompletedProcess([host, command], done.rc, done.stdout.encode(),
                                       done.stderr.encode())


BENCH_REPO = "bench/openscap"
BENCH_SOURCES = "/etc/apt/sources.list.d/opsctl-bench-openscap.sources"


def openscap_repo(root: Path) -> Path:
    """A signed flat repository of what the host lacks to run oscap, in the mirror's tree."""
    from opsctl.mirror import build as mirror

    work = cache_dir() / "openscap-apt"
    for old in (work / "cache" / "archives").glob("*.deb"):  # only this run's downloads
        old.unlink()
    debs = mirror.download(["openscap-scanner", "linux-base"], work,
                           status=root / "var/lib/dpkg/status")
    repo = mirror.mirror_dir() / BENCH_REPO
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    for deb in debs:
        shutil.copy2(deb, repo / deb.name)
    mirror.sign_index(repo, [repo / deb.name for deb in debs])
    return repo


def install_oscap_in_host(site: str, host: str, root: Path, ds: Path) -> None:
    repo = openscap_repo(root)
    sources = (root / "etc/apt/sources.list.d/opsctl-mirror.sources").read_text()
    uri = re.search(r"^URIs:\s*(\S+)", sources, re.M)
    keyring = re.search(r"^Signed-By:\s*(\S+)", sources, re.M)
    if not uri or not keyring:
        sys.exit("bench_check: the host has no opsctl-mirror.sources (converge it first)")
    print(f"bench_check: installing openscap-scanner on {host} from {uri[1]}{BENCH_REPO}/ "
          f"({len(list(repo.glob('*.deb')))} packages)", file=sys.stderr)
    stanza = (f"Types: deb\nURIs: {uri[1]}{BENCH_REPO}/\nSuites: ./\n"
              f"Signed-By: {keyring[1]}\n")
    done = lab_ssh(site, host, f"cat > {BENCH_SOURCES} && apt-get update -q >/dev/null && "
                   "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                   "--no-install-recommends openscap-scanner >/dev/null && "
                   "mkdir -p /tmp/opsctl-bench-oscap", stdin=stanza.encode())
    if done.returncode != 0:
        sys.exit(f"bench_check: installing oscap on {host}: {done.stderr.decode()[-400:]}")
    lab_ssh(site, host, "cat > /tmp/opsctl-bench-oscap/ds.xml", stdin=ds.read_bytes())


def remove_oscap_from_host(site: str, host: str) -> None:
    """Purge what install_oscap_in_host added: the packages, their source, their lists."""
    lab_ssh(site, host, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --autoremove "
            "openscap-scanner openscap-common libopenscap25 linux-base >/dev/null; "
            f"rm -f {BENCH_SOURCES}; "
            "apt-get update -q >/dev/null; rm -rf /tmp/opsctl-bench-oscap")


def pose_as_machine(site: str, host: str) -> None:
    """SSG's `machine` platform is "package linux-base is installed" (a kernel: not a
    container). Without it most rules of a profile are not applicable in a container and cost
    nothing; with it OpenSCAP evaluates the profile as it would on a VM."""
    done = lab_ssh(site, host, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                   "--no-install-recommends linux-base >/dev/null")
    if done.returncode != 0:
        sys.exit(f"bench_check: installing linux-base on {host}: {done.stderr.decode()[-400:]}")


def oscap_in_host(site: str, host: str, profile: str, tailoring_file: Path | None = None,
                  ) -> tuple[float, dict[str, str]]:
    select = f"--profile {PROFILE}{profile}"
    if tailoring_file:
        lab_ssh(site, host, "cat > /tmp/opsctl-bench-oscap/tailoring.xml",
                stdin=tailoring_file.read_bytes())
        select = (f"--tailoring-file tailoring.xml --profile {profile} "
                  + " ".join(f"--rule {RULE}{r}" for r in equivalent_rules()))
    start = time.monotonic()
    done = lab_ssh(site, host, f"cd /tmp/opsctl-bench-oscap && oscap xccdf eval {select} "
                   "--results results.xml ds.xml >/dev/null 2>err.txt; echo rc=$?")
    seconds = time.monotonic() - start
    if done.stdout.decode().strip() not in ("rc=0", "rc=2"):
        err = lab_ssh(site, host, "cat /tmp/opsctl-bench-oscap/err.txt").stdout.decode()
        sys.exit(f"oscap in {host} failed ({done.stdout.decode().strip()}): {err[-400:]}")
    xml = lab_ssh(site, host, "cat /tmp/opsctl-bench-oscap/results.xml").stdout
    return seconds, verdicts(ET.fromstring(xml))


def lynis(site: str, host: str) -> tuple[float, dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "lynis"
        shutil.copytree("/usr/share/lynis", bundle)
        shutil.copy("/usr/sbin/lynis", bundle / "lynis")
        shutil.copy("/etc/lynis/default.prf", bundle / "default.prf")
        shutil.copytree("/etc/lynis/plugins", bundle / "plugins")
        tar_bytes = subprocess.run(["tar", "-C", tmp, "-cf", "-", "lynis"],
                                   capture_output=True, check=True).stdout
    lab_ssh(site, host, "rm -rf /tmp/opsctl-bench-lynis && mkdir -p /tmp/opsctl-bench-lynis "
            "&& tar -C /tmp/opsctl-bench-lynis -xf -", stdin=tar_bytes)
    start = time.monotonic()
    done = lab_ssh(site, host, "rm -f /run/lynis.pid; "
                   "cd /tmp/opsctl-bench-lynis/lynis && ./lynis audit system "
                   "--quick --no-colors --logfile /tmp/opsctl-bench-lynis/lynis.log "
                   "--report-file /tmp/opsctl-bench-lynis/report.dat >/dev/null 2>&1; "
                   "cat /tmp/opsctl-bench-lynis/report.dat")
    seconds = time.monotonic() - start
    lab_ssh(site, host, "rm -rf /tmp/opsctl-bench-lynis")
    report: dict[str, object] = {"executed": [], "findings": []}
    for line in done.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key == "tests_executed":
            report["executed"] = [t for t in value.split("|") if t]
        elif key in ("suggestion[]", "warning[]"):
            report["findings"].append(value)  # type: ignore[union-attr]
    return seconds, report


# ---------------------------------------------------------------- agreement

def lynis_verdict(report: dict, test: str, detail: str | None) -> str:
    if test not in report["executed"]:  # type: ignore[operator]
        return "not run"
    for finding in report["findings"]:  # type: ignore[union-attr]
        fid, _, rest = finding.partition("|")
        if fid == test and (detail is None or re.search(detail, rest, re.I)):
            return "fail"
    return "pass"


def agreement(ours: dict[str, str], scap: dict[str, str], report: dict) -> list[dict]:
    rows = []
    for item in yaml.safe_load(EQUIVALENTS.read_text())["equivalents"]:
        scap_v = "/".join(sorted({scap.get(r, "not selected") for r in item.get("oscap", [])}))
        lynis_v = (lynis_verdict(report, item["lynis"]["test"], item["lynis"].get("detail"))
                   if item.get("lynis") else "-")
        rows.append({"check": item["check"], "opsctl": ours.get(item["check"], "-"),
                     "oscap": scap_v or "-", "oscap_rules": ",".join(item.get("oscap", [])),
                     "lynis": lynis_v, "lynis_test": (item.get("lynis") or {}).get("test", "-"),
                     "why": item.get("why", "")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", default="reference",
                        help="site name (inventory/NAME) or site directory")
    parser.add_argument("--host", default="db1")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="standard",
                        help="ssg-debian12 profile for OpenSCAP (standard: 44 rules)")
    parser.add_argument("--lynis-runs", type=int, default=1)
    parser.add_argument("--install", action="store_true",
                        help="apt-get install openscap-scanner and lynis when missing")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--no-oscap-in-host", dest="in_host", action="store_false",
                        help="skip OpenSCAP inside the host (it installs, then purges, "
                        "openscap-scanner there)")
    args = parser.parse_args()
    ensure_packages(args.install)
    site_name = load_site(args.site).name
    ds = debian12_datastream()
    root = state_dir() / "labs" / site_name / "hosts" / args.host / "merged"
    if not (root / "etc/os-release").exists():
        sys.exit(f"bench_check: {root} is not a running lab host's root "
                 f"(opsctl up --site {args.site} first)")
    out = Path(tempfile.mkdtemp(prefix="opsctl-bench-check-"))

    one, fleet, scap_times, lynis_times = [], [], [], []
    doc: dict = {}
    opsctl_check(args.site, args.host)  # warm-up: the bytecode cache, the SSH master
    for _ in range(args.runs):
        seconds, doc = opsctl_check(args.site, args.host)
        one.append(seconds)
        fleet.append(opsctl_check(args.site, None)[0])
    host = next(t for t in doc["targets"] if t["scope"] == "host")
    ours = {c["id"]: c["status"] for c in host["checks"]}
    ours_evaluated = sum(1 for s in ours.values() if s != "not_applicable")
    scap: dict[str, str] = {}
    for _ in range(args.runs):
        seconds, scap = oscap(root, ds, args.profile, out)
        scap_times.append(seconds)
    scap_evaluated = evaluated(scap)
    tailored_seconds, scap_eq = oscap(root, ds, TAILORED, out, tailoring(ds, args.profile, out))
    host_times: list[float] = []
    machine_times: list[float] = []
    in_host: dict[str, str] = {}
    as_machine: dict[str, str] = {}
    if args.in_host:
        install_oscap_in_host(site_name, args.host, root, ds)
        try:
            for _ in range(args.runs):
                seconds, in_host = oscap_in_host(site_name, args.host, args.profile)
                host_times.append(seconds)
            pose_as_machine(site_name, args.host)
            for _ in range(args.runs):
                seconds, as_machine = oscap_in_host(site_name, args.host, args.profile)
                machine_times.append(seconds)
            host_tailoring = tailoring(Path("/tmp/opsctl-bench-oscap/ds.xml"), args.profile,
                                       out)
            _, scap_eq = oscap_in_host(site_name, args.host, TAILORED, host_tailoring)
        finally:
            remove_oscap_from_host(site_name, args.host)
    host_evaluated, machine_evaluated = evaluated(in_host), evaluated(as_machine)
    report: dict = {}
    for _ in range(args.lynis_runs):
        seconds, report = lynis(site_name, args.host)
        lynis_times.append(seconds)
    lynis_evaluated = len(report["executed"])

    def line(name: str, values: list[float], checks: int) -> str:
        med = statistics.median(values)
        return (f"{name:44s} median {med:8.2f} s  checks {checks:4d}  "
                f"{checks / med:9.1f} checks/s   runs {' '.join(f'{v:.2f}' for v in values)}")

    print(f"# {' '.join(sys.argv)}  (host {args.host}, {args.runs} runs)")
    print(line(f"opsctl check --limit {args.host} (wall)", one, ours_evaluated))
    print(line("  in-process seconds field (json)", [doc["seconds"]], ours_evaluated))
    print(line("opsctl check, whole fleet (wall)", fleet, ours_evaluated))
    print(line(f"oscap xccdf eval {args.profile} (probe root)", scap_times, scap_evaluated))
    print(line("oscap, the equivalent rules only (1 run)", [tailored_seconds],
               evaluated(scap_eq)))
    if host_times:
        print(line(f"oscap xccdf eval {args.profile} (in the host)", host_times,
                   host_evaluated))
        print(line(f"oscap {args.profile}, in the host with linux-base", machine_times,
                   machine_evaluated))
    print(line("lynis audit system --quick (in the host)", lynis_times, lynis_evaluated))
    ours_rate = ours_evaluated / statistics.median(one)
    ratio = ours_rate / (scap_evaluated / statistics.median(scap_times))
    print(f"checks/s ratio opsctl : oscap (probe root) = {ratio:.1f}x   wall ratio oscap/opsctl"
          f" = {statistics.median(scap_times) / statistics.median(one):.1f}x   "
          f"lynis/opsctl = {statistics.median(lynis_times) / statistics.median(one):.1f}x")
    for name, times, count in (("in the host", host_times, host_evaluated),
                               ("in the host with linux-base", machine_times,
                                machine_evaluated)):
        if times and count:
            rate = count / statistics.median(times)
            print(f"checks/s ratio opsctl : oscap ({name}) = {ours_rate / rate:.1f}x   "
                  f"wall ratio = {statistics.median(times) / statistics.median(one):.1f}x")
    rows = agreement(ours, scap_eq, report)
    print("\n| our check | opsctl | OpenSCAP rule(s) | OpenSCAP | Lynis test | Lynis |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['check']} | {r['opsctl']} | {r['oscap_rules']} | {r['oscap']} | "
              f"{r['lynis_test']} | {r['lynis']} |")
    if args.json:
        args.json.write_text(json.dumps({
            "opsctl_one": one, "opsctl_fleet": fleet, "oscap": scap_times,
            "oscap_in_host": host_times, "oscap_in_host_machine": machine_times,
            "lynis": lynis_times,
            "checks": {"opsctl": ours_evaluated, "oscap": scap_evaluated,
                       "oscap_in_host": host_evaluated,
                       "oscap_in_host_machine": machine_evaluated, "lynis": lynis_evaluated},
            "agreement": rows}, indent=1))
    print(f"\n(OpenSCAP results: {out})")


if __name__ == "__main__":
    main()
