"""Helpers the lab tests share for the platform's data: SQL on a database host, the
desensitised extract run as its job runs it, and HTTPS requests from the `public` namespace
through a site's lb1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from opsctl.db.ops import leader_name
from opsctl.lab.plan import plan_lab
from opsctl.pki import pki_dir
from opsctl.transport import for_site

ROOT = Path(__file__).resolve().parents[2]
EXTRACT = ROOT / "scheduler" / "actions" / "extract_desensitised.py"
ID_18 = "^[0-9]{17}[0-9X]$"


def on(site, host: str, *argv: str, stdin: bytes | None = None,
       timeout: float = 120) -> tuple[int, str]:
    done = for_site(site).run(host, list(argv), stdin=stdin, timeout=timeout)
    return done.rc, done.output


def sql(site, host: str, database: str, statement: str) -> str:
    code, out = on(site, host, "runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t",
                   "-q", "-v", "ON_ERROR_STOP=1", "-F", "|", "-d", database, "-c", statement)
    assert code == 0, out
    return "\n".join(ln for ln in out.splitlines() if "could not change directory" not in ln)


def extract(site, host: str = "db1") -> tuple[int, str]:
    """The extract-desensitised action on `host`, as postgres, as its job runs it."""
    return on(site, host, "runuser", "-u", "postgres", "--", "python3", "-",
              stdin=EXTRACT.read_bytes(), timeout=300)


def leader(site) -> str:
    """The database host Patroni says leads now. Under load (a converge beside the
    reference's tests on a 2-core machine) Patroni may move the leader when the leader's key
    runs out: the extract's job runs on every database host and only the leader's copy
    works, so a test that means "the primary" asks here rather than naming db1."""
    name = leader_name(site, for_site(site))
    assert name, f"{site.name}: Patroni names no leader"
    return name


def summary(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def public_request(site, method: str, path: str, body: dict | None = None,
                   lb: str = "lb1") -> tuple[int, dict]:
    """An HTTPS request from the `public` namespace through lb1, as the internet's users."""
    netns = plan_lab(site).node("public").netns
    code = (
        "import json, ssl, sys, urllib.request, urllib.error\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
        "data = sys.argv[4].encode() if sys.argv[4] else None\n"
        "req = urllib.request.Request(sys.argv[2], data=data, method=sys.argv[3],\n"
        "    headers={'Content-Type': 'application/json'})\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=10, context=ctx)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n")
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c", code, str(pki_dir(site.name) / "ca.crt"),
         f"https://{site.hosts[lb].address}{path}", method,
         json.dumps(body, ensure_ascii=False) if body else ""],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    status, text = done.stdout.split("\n", 1)
    return int(status), json.loads(text)
