"""The steps on hosts that rolling work shares (`opsctl deploy` and `opsctl patch`): does a
host answer, drain hosts at every balancer and put them back, a component's health check run
on the host itself. Edge: everything here goes through the site's transport.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opsctl.deploy import balancer
from opsctl.deploy.plan import DeployFailed
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport

DRAIN_TIMEOUT = 60


def run(transport: Transport, host: str, argv: list[str], stdin: bytes | None = None,
        timeout: float = 60) -> tuple[int, str]:
    """(exit code, what it said). A host that cannot be asked (unreachable, a changed key,
    sudo refused) raises HostError: each step says what that means for it."""
    done = transport.run(host, argv, stdin=stdin, timeout=timeout)
    return done.rc, done.output


# The programs run on the hosts and balancers: files in remote/, sent as the argument of
# `python3 -c` / `sh -c` (stdin carries the artifact or the backends file), each with named
# arguments and its own tests (tests/unit/test_deploy_remote.py).
REMOTE = Path(__file__).resolve().parent / "remote"


def remote_program(name: str) -> str:
    """The text of one of the programs in REMOTE."""
    return (REMOTE / name).read_text(encoding="utf-8")


def unanswered(transport: Transport, hosts: list[str]) -> list[str]:
    """Why each host that cannot be acted on cannot (unreachable, changed key, sudo)."""
    def why(host: str) -> str | None:
        try:
            code, out = run(transport, host, ["true"], timeout=10)
        except HostError as exc:
            return str(exc)
        return None if code == 0 else f"{host}: `true` exited {code} ({out})"
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return [w for w in pool.map(why, hosts) if w]


def set_drained(site: Site, transport: Transport, component: str, drained: set[str]) -> None:
    """Every balancer's backends file for `component` with `drained` marked down (an empty
    set puts every host back); returns when the old workers finished their requests."""
    text = balancer.backends_text(site, component, drained).encode()
    path = balancer.backends_path(component)
    for lb in [h.name for h in site.hosts_in("lb")]:
        try:
            code, out = run(transport, lb, [
                "sh", "-c", remote_program("swap_backends.sh"), "swap_backends", "--file", path,
                "--wait", str(DRAIN_TIMEOUT), "--pid-file", balancer.NGINX_PID_FILE],
                stdin=text, timeout=DRAIN_TIMEOUT + 30)
        except HostError as exc:
            code, out = None, str(exc)
        if code != 0:
            raise DeployFailed(f"{lb}: could not set the backends of {component} "
                               f"(drained: {', '.join(sorted(drained)) or 'none'}): {out}")


def health(site: Site, transport: Transport, host: str, component: str,
           timeout: float) -> tuple[bool, str]:
    """(healthy, the last line the check said): `component`'s health URL asked on the host
    itself until it answers the expected status or `timeout` passes."""
    spec = site.spec.components[component]
    url = f"http://{site.hosts[host].address}:{spec.port}{spec.health.path}"
    try:
        code, out = run(transport, host, ["python3", "-c", remote_program("health_wait.py"),
                                          "--url", url, "--status", str(spec.health.status),
                                          "--timeout", str(timeout)],
                        timeout=timeout + 30)
    except HostError as exc:
        return False, str(exc)
    return code == 0, out.splitlines()[-1] if out else f"exit {code}"
