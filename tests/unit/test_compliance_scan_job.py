"""The hosts' own daily compliance scan: the scanner's archive, unpacked as the role unpacks
it, runs under Debian's Python with nothing but the archive, and leaves what the monitoring
agent reads."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from monitor.collectors.compliance import ComplianceCollector
from opsctl.check.bundle import build_bundle
from security.collector.bundle import MODULES

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3")


def test_the_archive_is_the_same_bytes_for_the_same_tree(tmp_path: Path) -> None:
    first = build_bundle(tmp_path / "a")
    second = build_bundle(tmp_path / "b")
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        names = tar.getnames()
    # the collector's modules: the host's own scan builds its script from them
    assert {f"security/collector/{m}.py" for m in (*MODULES, "bundle")} <= set(names)
    assert any(n.startswith("security/catalog/host/") for n in names)
    assert "vendor/pydantic/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_an_unchanged_tree_reuses_the_archive(tmp_path: Path) -> None:
    first = build_bundle(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert build_bundle(tmp_path) == first
    assert first.stat().st_mtime_ns == stamp


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="needs Debian's /usr/bin/python3")
def test_the_installed_action_scans_this_host_and_feeds_the_monitor(tmp_path: Path) -> None:
    home = tmp_path / "opsctl-scheduler"
    (home / "scheduler" / "actions").mkdir(parents=True)
    shutil.copy(ROOT / "scheduler" / "actions" / "compliance_scan.py",
                home / "scheduler" / "actions")
    with tarfile.open(build_bundle(tmp_path / "bundles")) as tar:
        tar.extractall(home, filter="data")
    context = tmp_path / "context.json"
    context.write_text(json.dumps({"host": "db1", "site": "reference", "zone": "secure",
                                   "groups": ["db"], "allowed_tcp_ports": [22, 5432],
                                   "management_cidrs": ["172.31.1.0/24"]}))
    out = tmp_path / "compliance.json"
    # -I: no PYTHONPATH, no user site; only the archive and Debian's own packages.
    done = subprocess.run([str(DEBIAN_PYTHON), "-I",
                           str(home / "scheduler" / "actions" / "compliance_scan.py"),
                           "--context", str(context), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert summary["host"] == "db1" and summary["level"] == 3
    assert sum(summary["counts"].values()) >= 60
    assert all(isinstance(i, str) and " " not in i for i in summary["failed"])
    metrics = {m.name: m for m in ComplianceCollector(out).collect()}
    counts = {s.labels["result"]: s.value for s in metrics["opsctl_compliance_checks"].samples}
    assert counts == {k: float(v) for k, v in summary["counts"].items()}
    assert 0.0 <= metrics["opsctl_compliance_pass_ratio"].samples[0].value <= 1.0
    # this machine's accounts with an ageing password, each as the day it expires
    assert all(isinstance(t, float) and t % 86400 == 0 for t in
               summary["password_expiry"].values())


def test_bad_context_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "context.json"
    bad.write_text("{not json")
    done = subprocess.run([str(DEBIAN_PYTHON if DEBIAN_PYTHON.exists() else "python3"),
                           str(ROOT / "scheduler" / "actions" / "compliance_scan.py"),
                           "--context", str(bad), "--out", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=120, check=False,
                          cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.startswith(f"compliance-scan: {bad}:")
    assert not (tmp_path / "out.json").exists()
