"""The CA rollover on the converged reference lab (issue 14 part 3): `pki rotate --ca` then
`pki rotate --ca --finish`, under a steady load of HTTPS requests through lb1 (from `public`,
trusting the site's trust bundle as it is at each request) and of inserts from app1 into the
database (one libpq connection each, host=db1,db2, verify-full against the host's ca.crt).

- `--ca`: not one request or insert fails; every certificate file and every service on
  every host is the new CA B's; every host trusts A and B (the bundle and the system store);
- `--finish`: A is trusted nowhere (a client holding only A fails against a service; the
  hosts' system store refuses A), everything still presents B, `opsctl status` is green;
  A is kept on the control node as ca-previous.crt.

The site is left on B, trusting B alone: the tests after it read the control node's ca.crt,
which is B. Should the test fail half-way, the rollover is completed in `finally` so that
they still find one CA everywhere. Bounded: one rollover (three tagged applies over the 7
hosts, the rotation's included), about 8 to 10 minutes on 2 cores.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from test_deploy_lab import Load
from test_ha_lab import TABLE, dsn, prepare_table

from opsctl import audit
from opsctl.pki import pki_dir
from opsctl.pki.certs import common_name, from_pem
from opsctl.secrets import secrets_dir
from opsctl.transport import for_site

STOP = "/run/opsctl-rollover-inserts.stop"


def opsctl(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, timeout=timeout)


class Inserts(threading.Thread):
    """Inserts from app1 until told to stop (a file on app1) or 30 minutes pass, one psql
    connection each; every outcome printed: `ack N` or `fail N why`."""

    def __init__(self, site, run: str) -> None:
        super().__init__(daemon=True)
        self.site, self.run_id, self.transport = site, run, for_site(site)
        self.output = ""
        self.start()

    def run(self) -> None:
        password = (secrets_dir(self.site.name) / "postgresql_app").read_text().split()[0]
        script = (
            f'end=$((SECONDS+1800)); i=0; '
            f'while [ $SECONDS -lt $end ] && [ ! -e {STOP} ]; do i=$((i+1)); '
            f'if out=$(psql "$0" -XAtqc "INSERT INTO {TABLE} (run, n) VALUES '
            f'(\'{self.run_id}\', $i) RETURNING n" 2>&1); then echo "ack $out"; '
            f'else echo "fail $i $(echo "$out" | head -c 200 | tr "\\n" " ")"; fi; '
            'sleep 0.1; done')
        self.output = self.transport.run(
            "app1", ["env", f"PGPASSWORD={password}", "bash", "-c", script,
                     dsn(self.site, "operational", "read-write")], timeout=1900).stdout

    def stop(self) -> tuple[int, list[str]]:
        self.transport.run("app1", ["touch", STOP], timeout=30)
        self.join(timeout=120)
        self.transport.run("app1", ["rm", "-f", STOP], timeout=30)
        lines = self.output.splitlines()
        return (sum(1 for ln in lines if ln.startswith("ack ")),
                [ln for ln in lines if ln.startswith("fail ")])


def _status(site) -> dict:
    done = opsctl("pki", "status", "--site", str(site.directory), "-o", "json", timeout=300)
    assert done.stdout, done.stderr[-2000:]
    return json.loads(done.stdout)


def _handshake(address: str, port: int, cafile: Path) -> str | None:
    """None when the service's certificate verifies against `cafile` alone, else why not."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False
    try:
        with socket.create_connection((address, port), timeout=10) as raw, \
                context.wrap_socket(raw):
            return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)


def _system_store_trusts(transport, host: str, pem: str) -> bool:
    done = transport.run(host, ["sh", "-c", "f=$(mktemp) && cat > \"$f\" && openssl verify "
                                "-CApath /etc/ssl/certs \"$f\"; rc=$?; rm -f \"$f\"; exit $rc"],
                         stdin=pem.encode(), timeout=30)
    return done.rc == 0


def _complete(site) -> None:
    """Whatever stopped the test: the rollover taken to its end, one CA everywhere."""
    state = pki_dir(site.name) / "rollover.json"
    if state.exists() and json.loads(state.read_text())["phase"] != "idle":
        opsctl("pki", "rotate", "--ca", "--site", str(site.directory))
        opsctl("pki", "rotate", "--ca", "--finish", "--site", str(site.directory))


def test_ca_rollover_under_load_fails_nothing_and_finish_trusts_the_new_ca_alone(reference):
    site, _ = reference
    pki = pki_dir(site.name)
    t = for_site(site)
    a = (pki / "ca.crt").read_text()
    a_name = common_name(from_pem(a).subject)
    prepare_table(site)
    load = Load(site, seconds=1800, threads=2, ca=pki / "trust.crt", follow_ca=True)
    t.run("app1", ["rm", "-f", STOP], timeout=30)
    inserts = Inserts(site, f"rollover{time.time_ns()}")
    time.sleep(3)
    try:
        started = time.monotonic()
        rolled = opsctl("pki", "rotate", "--ca", "--site", str(site.directory), "-o", "json")
        step_one = time.monotonic() - started
        assert rolled.returncode == 0, rolled.stdout[-4000:] + rolled.stderr[-2000:]
        first = json.loads(rolled.stdout)
        assert first["ok"] and first["phase"] == "overlap", first["problems"]
        b = (pki / "ca.crt").read_text()
        b_name = common_name(from_pem(b).subject)
        assert b_name != a_name and (pki / "ca-previous.crt").read_text() == a

        # every file and every service on B; every host trusts A and B
        status = first["status"]
        assert {h["name"] for h in status["hosts"]} == set(site.hosts)
        for host in status["hosts"]:
            assert host["error"] is None, host
            for f in host["files"]:
                if f["kind"] == "host":
                    assert f["signed_by"] == b_name and f["matches"], (host["name"], f)
            assert all(p["signed_by"] == b_name and p["matches"] for p in host["presented"]), \
                (host["name"], host["presented"])
        both = _status(site)
        for host in both["hosts"]:
            for f in (f for f in host["files"] if f["kind"] == "ca"):
                assert sorted(f["trusts"]) == sorted([a_name, b_name]), (host["name"], f)
        assert _system_store_trusts(t, "db1", a) and _system_store_trusts(t, "db1", b)
        again = opsctl("pki", "rotate", "--ca", "--site", str(site.directory))
        assert again.returncode == 2 and "--finish" in again.stderr, again.stderr

        started = time.monotonic()
        finished = opsctl("pki", "rotate", "--ca", "--finish", "--site", str(site.directory),
                          "-o", "json")
        step_two = time.monotonic() - started
        assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-2000:]
        assert json.loads(finished.stdout)["phase"] == "idle"
    finally:
        result = load.stop()
        acked, failed = inserts.stop()
        _complete(site)
    print(f"CA rollover: --ca {step_one:.0f}s, --finish {step_two:.0f}s; "
          f"{result['requests']} requests, {result['failed']} failed; "
          f"{acked} inserts, {len(failed)} failed")
    assert result["failed"] == 0, result["failures"]
    assert result["requests"] >= 100
    assert failed == [] and acked >= 100, failed[:5]

    # A trusted nowhere: the bundle, the system store, a client holding A alone
    after = _status(site)
    assert after["healthy"], after["problems"]
    for host in after["hosts"]:
        for f in (f for f in host["files"] if f["kind"] == "ca"):
            assert f["trusts"] == [b_name], (host["name"], f)
        assert all(p["signed_by"] == b_name for p in host["presented"]), host["name"]
    assert not _system_store_trusts(t, "db1", a) and _system_store_trusts(t, "db1", b)
    agent = (str(site.hosts["db1"].address), site.agent_port)
    assert _handshake(*agent, pki / "ca-previous.crt") is not None, "A still verifies db1"
    assert _handshake(*agent, pki / "ca.crt") is None
    assert (pki / "ca-previous.crt").read_text() == a and (pki / "trust.crt").read_text() == b

    steps = [r["args"].get("step") for r in audit.records()
             if r["action"].startswith("pki rotate --ca")]
    assert steps[-6:] == ["new CA", "trust", "switch", "reissue", "refused", "trust"], steps
    assert audit.verify().ok

    deadline = time.monotonic() + 300
    while (done := opsctl("status", "--site", str(site.directory))).returncode != 0:
        assert time.monotonic() < deadline, done.stdout[-3000:] + done.stderr[-2000:]
        time.sleep(10)
