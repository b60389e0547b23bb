"""The audit checks evaluate for real where the kernel lets a host own audit: the control node.

Lab hosts are containers, where the kernel refuses audit (the hardening lab test counts those
checks as not applicable). Here the hardening role's audit rules are loaded into this machine's
kernel with `auditctl -R`, `opsctl check --local` must see every rule check pass, and the rules
the kernel had before are put back. Skipped, with the reason, where the kernel refuses audit to
this machine or `auditctl` is missing. `./setup` puts one in `.venv/bin`, taken out of
Debian's auditd package (installing the package would start auditd). Rule loading only:
audit stays as enabled or disabled as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from security.collector import audit

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "roles" / "hardening" / "templates" / "50-opsctl-hardening.rules.j2"
# setup's auditctl first; the collector under `opsctl check --local` finds it on this PATH too
ENV = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
RULE_CHECKS = ("audit_rules_audit_config", "audit_rules_identity", "audit_rules_logins",
               "audit_rules_sessions", "audit_rules_sudoers", "audit_rules_time_change",
               "audit_rules_permission_changes", "audit_rules_privileged")


def _kernel_audit() -> str | None:
    """None when this machine may load audit rules, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("auditctl", path=ENV["PATH"]):
        return "auditctl is not installed on this machine (Debian's auditd package)"
    facts = audit.fact_audit()  # the kernel's own answer; needs no auditctl
    if not facts["kernel_available"]:
        return f"the kernel refuses audit here: {facts['unavailable_reason']}"
    if facts["immutable"]:
        return "the kernel's audit rules are locked (-e 2) until reboot"
    return None


@pytest.fixture
def loaded_rules():
    reason = _kernel_audit()
    if reason:
        pytest.skip(reason)
    before = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=True,
                            env=ENV).stdout
    # The role's rules file without Jinja comments and without any -e (never lock the kernel).
    text = "\n".join(line for line in RULES.read_text().splitlines()
                     if not line.startswith(("{", "##")) and not re.match(r"\s*-e\b", line))
    with tempfile.NamedTemporaryFile("w", suffix=".rules", delete=False) as fh:
        fh.write(text + "\n")
    try:
        done = subprocess.run(["auditctl", "-R", fh.name], capture_output=True, text=True,
                              check=False, env=ENV)
        if done.returncode != 0 and "Operation not permitted" in done.stderr:
            pytest.skip(f"the kernel refused the rules: {done.stderr.strip()[-200:]}")
        yield done
    finally:
        os.unlink(fh.name)
        subprocess.run(["auditctl", "-D"], capture_output=True, check=False, env=ENV)
        restore = [line for line in before.splitlines() if line.startswith(("-w", "-a"))]
        for line in restore:
            subprocess.run(["auditctl", *line.split()], capture_output=True, check=False,
                           env=ENV)


def test_rules_loaded_on_a_real_kernel_make_the_rule_checks_pass(loaded_rules):
    done = subprocess.run([sys.executable, "-m", "opsctl", "check", "--local", "--format",
                           "json"], capture_output=True, text=True, check=False, cwd=ROOT,
                          env=ENV)
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads(done.stdout)
    checks = {c["id"]: c for c in doc["targets"][0]["checks"]}
    wrong = {cid: (checks[cid]["status"], checks[cid]["reason"]) for cid in RULE_CHECKS
             if checks[cid]["status"] != "pass"}
    assert not wrong, wrong
