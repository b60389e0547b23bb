"""The lab tests: real containers, namespaces and SSH on this machine (root only).

They share one lab per site per session: bring it up once, converge once, then test
many things against it. Their state lives apart from an operator's (/var/lib/opsctl-tests);
the base image and the mirror are shared through the cache (/var/cache/opsctl).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import background
import pytest
from background import Chain, Step

HERE = Path(__file__).resolve().parent
MINI = HERE / "sites" / "mini"
# Overridable so that a developer can run lab tests on a copy of the reference site with
# its own name and subnets while another lab of the reference site is up.
TEST_STATE = Path(os.environ.get("OPSCTL_TEST_STATE_DIR", "/var/lib/opsctl-tests"))
REFERENCE = os.environ.get("OPSCTL_TEST_SITE", "reference")
# The province made by `opsctl site new` beside the reference (test_province_lab): a network
# clear of the reference site, the mini test site and the ranges developers' copies use.
PROVINCE = "gansu"
PROVINCE_BASE = "172.31.200.0/22"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.lab)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="lab tests need root"))
    # `lab_first` tests look at the shared lab before anything converges it; then the modules
    # that mostly wait on the clock, the province converging beside them (background.py), and
    # the province's own tests, so that its lab is down before the rest; `lab_teardown` tests
    # take the shared lab down, after every other test.
    def order(item) -> tuple[bool, int]:
        if HERE not in Path(item.fspath).parents:
            return False, 0
        return (item.get_closest_marker("lab_teardown") is not None,
                1 if item.get_closest_marker("lab_first") else
                2 if item.get_closest_marker("clock_bound") else
                3 if "province" in item.fixturenames else 4)

    items.sort(key=order)


def pytest_collection_finish(session):
    """Start the reference lab's bring-up now, beside the unit tests; make the province's
    ready for the first clock-bound module (background.py)."""
    lab_items = [i for i in session.items if HERE in Path(i.fspath).parents]
    if not lab_items or os.geteuid() != 0 or session.config.option.collectonly:
        return
    needs = set().union(*(i.fixturenames for i in lab_items))
    env = dict(os.environ, OPSCTL_STATE_DIR=str(TEST_STATE))
    if "reference" in needs:
        background.CHAINS["reference"] = reference_chain(env, fresh_scan="fresh" in needs)
        background.CHAINS["reference"].start()
    if "province" in needs:
        background.CHAINS["province"] = province_chain(env)


def pytest_runtest_setup(item):
    if item.get_closest_marker("clock_bound") and (chain := background.chain("province")):
        chain.start()


def pytest_terminal_summary(terminalreporter):
    if lines := background.summary():
        terminalreporter.write_sep("-", "lab work in the background")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session):
    background.stop_all()


def reference_chain(env: dict[str, str], fresh_scan: bool) -> Chain:
    from opsctl.lab import lifecycle
    from opsctl.reference_components.build import build_reference
    from opsctl.site import load_site

    site = load_site(REFERENCE)
    refuse_if_up_elsewhere(site.name)
    # `opsctl up` builds them too, and writes only what differs: built here, before the unit
    # tests, it writes nothing while test_bad_input watches build/ for writes.
    build_reference()
    where = str(site.directory)
    fresh = [Step("mirror", ("mirror", "build")),
             Step("lab-up", ("lab", "up", "--site", where)),
             # exit 1: a fresh lab fails checks, which is what the scan is for
             Step("fresh-scan", ("check", "--site", where, "--format", "json"), ok=(0, 1))]
    return Chain("reference", [*(fresh if fresh_scan else []),
                             Step("up", ("up", "--site", where))],
                 env, cleanup=lambda: lifecycle.down(site.name, site), site=site)


def province_chain(env: dict[str, str]) -> Chain:
    from opsctl.lab import lifecycle
    from opsctl.site import load_site
    from opsctl.site.new import new_site

    if Path(f"/run/netns/opsctl-{PROVINCE}-fw").exists():
        pytest.exit(f"a {PROVINCE} lab is already up; take it down first", returncode=2)
    root = TEST_STATE / "inventory"
    shutil.rmtree(root / PROVINCE, ignore_errors=True)
    site = load_site(new_site(PROVINCE, cidr_base=PROVINCE_BASE, inventory_root=root).directory)
    where = str(site.directory)
    # The AIDE baseline (a whole-filesystem scan per host) is what the hardening tests prove
    # on the reference lab; here it would only double the suite's time.
    return Chain("province", [Step("lab-up", ("lab", "up", "--site", where)),
                             Step("apply", ("apply", "--site", where,
                                            "--skip-tags", "hardening-aide"))],
                 env, cleanup=lambda: lifecycle.down(site.name, site), site=site)


@pytest.fixture(scope="session", autouse=True)
def lab_state_dir():
    """One state directory for the whole lab session, never the operator's."""
    previous = os.environ.get("OPSCTL_STATE_DIR")
    os.environ["OPSCTL_STATE_DIR"] = str(TEST_STATE)
    yield TEST_STATE
    if previous is None:
        os.environ.pop("OPSCTL_STATE_DIR", None)
    else:
        os.environ["OPSCTL_STATE_DIR"] = previous


def refuse_if_up_elsewhere(site_name: str) -> None:
    """A lab of the same site made outside the tests would share our namespace names."""
    if Path(f"/run/netns/opsctl-{site_name}-fw").exists() and not (
            TEST_STATE / "labs" / site_name).exists():
        pytest.exit(f"a {site_name} lab is already up outside the tests; "
                    f"run `opsctl lab down --site {site_name}` first", returncode=2)


@pytest.fixture(scope="module")
def mini_site():
    from opsctl.lab import lifecycle
    from opsctl.site import load_site

    site = load_site(MINI)
    refuse_if_up_elsewhere(site.name)
    yield site
    lifecycle.down(site.name, site)
    shutil.rmtree(TEST_STATE / "labs" / site.name, ignore_errors=True)


@pytest.fixture(scope="session")
def reference_site():
    from opsctl.site import load_site

    site = load_site(REFERENCE)
    refuse_if_up_elsewhere(site.name)
    return site


@pytest.fixture(scope="session")
def reference(reference_site):
    """The reference deployment, up and converged once for the whole session, by the
    README's own command (`opsctl up`: mirror build, lab up, apply), started in the
    background when the tests were collected (background.py).

    Yields (site, the first apply's run record). Tests may break things only if they
    repair them before they end; taking the lab down is for `lab_teardown` tests.
    """
    from opsctl.apply import history

    site = reference_site
    try:
        done = background.CHAINS["reference"].wait("up")
        assert done.ok, done.tail()
        first = history.resolve("last", site.name)
        pin_aide_daily_check(site)
        yield site, first
    finally:
        background.CHAINS["reference"].stop()  # its cleanup takes the lab down


# Debian's AIDE timer fires at 01:50 host time plus up to two hours: whether it falls inside a
# session depends on the hour CI starts. When it does, each host's check finds what the
# earlier tests changed on purpose (a repaired sshd_config, a patched package, rotated
# certificates), OpsctlFileIntegrityChanged fires and every later test that needs a green
# site fails. The tests run the check themselves (test_monitoring_lab); the timer stays
# enabled and waiting, on a date past any session. A file in /etc, so a rebooted host keeps it.
AIDE_TIMER_PIN = "/etc/systemd/system/dailyaidecheck.timer.d/opsctl-tests.conf"


def pin_aide_daily_check(site) -> None:
    from opsctl.lab import lifecycle

    script = (f"mkdir -p {Path(AIDE_TIMER_PIN).parent} && printf '[Timer]\\nOnCalendar=\\n"
              f"OnCalendar=2099-01-01\\nRandomizedDelaySec=0\\n' > {AIDE_TIMER_PIN} && "
              "systemctl daemon-reload && systemctl restart dailyaidecheck.timer")
    for host in site.hosts:
        code, out = lifecycle.ssh.remote(site, host, ["sh", "-c", script], timeout=60)
        assert code == 0, f"{host}: {out}"


@pytest.fixture(scope="session")
def scrape_agent():
    """The function below, for tests: scrape_agent(site, host[, password])."""
    return _scrape_agent


def _scrape_agent(site, host: str, password: str | None = None, timeout: float = 10) -> str:
    """GET /metrics from a host's agent as Prometheus does: TLS with the site CA, basic auth."""
    import base64
    import ssl
    import urllib.request

    from opsctl.pki import pki_dir
    from opsctl.secrets import MONITOR_SCRAPE, ensure_secret

    context = ssl.create_default_context(cafile=str(pki_dir(site.name) / "ca.crt"))
    secret = password if password is not None else ensure_secret(site.name, MONITOR_SCRAPE)
    token = base64.b64encode(f"prometheus:{secret}".encode()).decode()
    request = urllib.request.Request(
        f"https://{site.hosts[host].address}:{site.agent_port}/metrics",
        headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return response.read().decode()
