"""`lab up`, `lab down`, `lab status`: the lab's life, from a site to running hosts and back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsctl.errors import InvalidInput, LabError, NotFound, PrerequisiteMissing, Problem
from opsctl.lab import cgroups, containers, flowcheck, mirror_server, net, ssh
from opsctl.lab.image import ensure_image
from opsctl.lab.plan import LabPlan, PlanConflict, forbidden_overlaps, grow, plan_lab
from opsctl.lab.state import facts_dir, lab_dir
from opsctl.network.flows import boundary_rules
from opsctl.network.nftables import boundary_ruleset, control_port_ruleset
from opsctl.paths import cache_dir, ensure_private_dir, site_dir
from opsctl.site.model import Site
from opsctl.transport import HostError

Progress = Callable[[str], None]
STATE_FILE = "lab.json"


@dataclass
class LabState:
    """What `lab up` made, written before each thing is made so `down` can undo a partial up."""

    plan: LabPlan
    pids: dict[str, int] = field(default_factory=dict)
    mirror_pid: int | None = None
    mirror_port: int | None = None

    def save(self, lab: Path) -> None:
        data = {"plan": self.plan.to_dict(), "pids": self.pids, "mirror_pid": self.mirror_pid,
                "mirror_port": self.mirror_port}
        tmp = lab / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(lab / STATE_FILE)

    @classmethod
    def load(cls, lab: Path) -> LabState | None:
        try:
            data = json.loads((lab / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        return cls(LabPlan.from_dict(data["plan"]), {k: int(v) for k, v in data["pids"].items()},
                   data.get("mirror_pid"), data.get("mirror_port"))


@dataclass
class UpResult:
    site: str
    image_built: bool
    booted: list[str]
    already_running: list[str]
    seconds: float


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PrerequisiteMissing("the lab needs root (namespaces, mounts, containers)")
    for tool in ("ip", "nft", "systemd-nspawn", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise PrerequisiteMissing(f"{tool} is not installed (run ./setup)")


def _hosts_file(site: Site, host: str) -> str:
    # 127.0.1.1 for the host's own name, as Debian's installer writes it: sudo and
    # others resolve the hostname without asking the network.
    lines = ["127.0.0.1 localhost", f"127.0.1.1 {host}", f"{site.control_address} control mirror"]
    lines += [f"{h.address} {h.name}" for h in site.hosts.values()]
    return "\n".join(lines) + "\n"


def up(site: Site, progress: Progress = lambda _msg: None) -> UpResult:
    # Bad input is exit 2 whoever runs it: judge the site before asking for root.
    problems = forbidden_overlaps(site)
    if problems:
        raise InvalidInput([Problem(str(site.directory), "site.zones", p) for p in problems])
    _require_root()
    start = time.monotonic()
    plan = plan_lab(site)
    lab = ensure_private_dir(lab_dir(site.name))
    state = LabState.load(lab)
    if state:
        # A host added to the site joins the running lab; a host taken out keeps running
        # (its data stays, as a retired server's does) until `lab down`.
        try:
            plan = grow(state.plan, plan)
        except PlanConflict as exc:
            raise LabError(f"lab {site.name} is up with a different topology ({exc}); run "
                           f"`opsctl lab down --site {site.name}` first") from None
        state.plan = plan
    # A site whose mirror is one of its hosts (site.mirror) gets nothing from the control node.
    serves_mirror = site.mirror.host is None
    state = state or LabState(plan, mirror_port=site.mirror_port if serves_mirror else None)
    state.save(lab)
    net.check_routes_free(plan)

    progress("base image")
    image, built = ensure_image(lab / "image-build.log")
    progress("network: router, zones, control link")
    rules = boundary_rules(site)
    net.ensure_router(plan, boundary_ruleset(rules)
                      + control_port_ruleset(rules, site.control_address))
    net.ensure_control_link(plan)
    for node in plan.nodes:
        net.ensure_node_link(plan, node)

    mirror_dir = cache_dir() / "mirror"
    address = plan.control_address.split("/")[0]
    if serves_mirror and not mirror_server.is_server(state.mirror_pid, address,
                                                     site.mirror_port):
        progress(f"mirror server on {address}:{site.mirror_port}")
        state.mirror_pid = mirror_server.start(mirror_dir, address, site.mirror_port,
                                               lab / "mirror.log")
        state.save(lab)

    admin = ssh.admin(site, lab)
    # the site's hosts: a retired one stays as it is, out of the site's connection model
    hosts = [n for n in plan.hosts() if n.name in site.hosts]
    containers.check_inotify_headroom(sum(
        1 for node in hosts
        if not containers.is_container_process(state.pids.get(node.name), node.machine)))
    host_keys: dict[str, str] = {}
    booted, running = [], []
    for node in hosts:
        host_dir = lab / "hosts" / node.name
        merged = containers.mount_overlay(image, host_dir)
        host_keys[node.name] = containers.prepare_root(
            merged, node, _hosts_file(site, node.name), admin)
        if containers.is_container_process(state.pids.get(node.name), node.machine):
            running.append(node.name)
            continue
        progress(f"boot {node.name}")
        state.pids[node.name] = containers.boot(merged, node, lab)
        state.save(lab)
        booted.append(node.name)
    ssh.write_client_files(site, lab, host_keys)

    progress("waiting for SSH")
    addresses = {n.name: n.address.split("/")[0] for n in hosts}
    silent = ssh.wait_for_ssh(site, list(addresses), addresses)
    if silent:
        raise LabError(f"lab {site.name}: no SSH from {', '.join(silent)} within 90 s; "
                       f"see {lab}/hosts/<host>/console.log")
    return UpResult(site.name, built, booted, running, time.monotonic() - start)


@dataclass
class DownResult:
    site: str
    stopped: list[str]
    removed_netns: list[str]
    unmounted: list[str]
    mirror_stopped: bool


def down(site_name: str, site: Site | None = None,
         progress: Progress = lambda _msg: None) -> DownResult:
    """Remove what `lab up` made, from its stored plan, or from the site if none was stored."""
    _require_root()
    lab = lab_dir(site_name)
    state = LabState.load(lab)
    if state is None:
        if site is None:
            site_dir(site_name)  # NotFound: no lab of that name and no site either
            return DownResult(site_name, [], [], [], False)
        state = LabState(plan_lab(site))
    plan = state.plan
    progress("stopping containers")
    machines = {n.name: n.machine for n in plan.hosts()}
    # what runs wins over what was recorded (a keeper records a rebooted host's new nspawn)
    pids = dict(state.pids) | containers.find_container_pids(machines)
    stopped = containers.stop(pids, machines)
    address = plan.control_address.split("/")[0]
    mirror_stopped = False
    if state.mirror_port:
        pid = state.mirror_pid or mirror_server.find(address, state.mirror_port)
        mirror_stopped = mirror_server.stop(pid, address, state.mirror_port)
    unmounted = [n.name for n in plan.hosts()
                 if containers.unmount(lab / "hosts" / n.name / "merged")]
    progress("removing namespaces and links")
    removed = [n.netns for n in plan.nodes if net.remove_netns(n.netns)]
    if net.remove_netns(plan.router_netns):
        removed.append(plan.router_netns)
    net.remove_control_link(plan)
    left = leftovers(plan, lab)
    if left:
        raise LabError(f"lab {site_name}: left behind after down: {'; '.join(left)}")
    shutil.rmtree(lab, ignore_errors=True)
    # Cached facts describe hosts that no longer exist; the next lab's hosts are new ones.
    shutil.rmtree(facts_dir(site_name), ignore_errors=True)
    return DownResult(site_name, stopped, removed, unmounted, mirror_stopped)


@dataclass
class HostStatus:
    name: str
    address: str
    zone: str
    container: str  # running | stopped
    ssh: bool
    systemd: str  # running | degraded | starting | ... | unknown

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def status(site: Site) -> list[HostStatus]:
    state = LabState.load(lab_dir(site.name))
    if state is None:
        raise NotFound(f"lab {site.name} is not up (opsctl lab up --site {site.name})")

    def one(node) -> HostStatus:
        address = node.address.split("/")[0]
        alive = containers.is_container_process(state.pids.get(node.name), node.machine)
        if node.name not in site.hosts:  # retired: still in the lab, no longer the site's
            return HostStatus(node.name, address, node.zone, "running" if alive else "stopped",
                              False, "retired")
        reachable = alive and ssh.port_open(address, site.spec.connection.port)
        systemd = "unknown"
        if reachable:
            try:
                code, out = ssh.remote(site, node.name, ["systemctl", "is-system-running"])
            except HostError:
                return HostStatus(node.name, address, node.zone, "running", False, systemd)
            systemd = out.splitlines()[-1] if out else f"exit {code}"
            reachable = code in (0, 1)
        return HostStatus(node.name, address, node.zone, "running" if alive else "stopped",
                          reachable, systemd)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, state.plan.hosts()))


def stop_host(site: Site | str, host: str) -> bool:
    """Power one container off (to stand for a host that fails); `lab up` boots it again.
    Given the site (not only its name), a host it does not have is refused first."""
    if isinstance(site, Site):
        site.require_hosts([host], "HOST")  # said before the lab is looked at
    site_name = site.name if isinstance(site, Site) else site
    lab = lab_dir(site_name)
    state = LabState.load(lab)
    if state is None:
        raise NotFound(f"lab {site_name} is not up")
    node = state.plan.node(host)
    if node is None or not node.container:
        raise NotFound(f"lab {site_name} has no host {host!r}")
    stopped = containers.stop({host: state.pids.get(host, 0)}, {host: node.machine})
    state.pids.pop(host, None)
    state.save(lab)
    return bool(stopped)


def ssh_command(site: Site, host: str, command: list[str]) -> list[str]:
    """ssh's argv for a lab host: the transport's, over the lab's connection model."""
    site.require_hosts([host], "HOST")  # said before the lab is looked at
    state = LabState.load(lab_dir(site.name))
    if state is None:
        raise NotFound(f"lab {site.name} is not up (opsctl lab up --site {site.name})")
    if state.plan.node(host) is None or not state.plan.node(host).container:
        names = ", ".join(n.name for n in state.plan.hosts())
        raise NotFound(f"lab {site.name} has no host {host!r} (hosts: {names})")
    return ssh.transport(site).ssh_argv(host, command or None)


def check_flows(site: Site) -> list[flowcheck.ProbeResult]:
    """Probe the whole flow matrix of a running lab (see flowcheck)."""
    state = LabState.load(lab_dir(site.name))
    if state is None:
        raise NotFound(f"lab {site.name} is not up (opsctl lab up --site {site.name})")
    return flowcheck.run_probes(flowcheck.matrix(site, state.plan))


def public_probes(site: Site) -> list[flowcheck.ProbeResult] | None:
    """Probes from the lab's client namespaces in the unmanaged zones (the internet's users),
    or None when no lab of the site is up here or its namespaces cannot be entered (root)."""
    state = LabState.load(lab_dir(site.name))
    clients = [n.name for n in state.plan.nodes if not n.container] if state else []
    if not clients:
        return None
    try:
        return flowcheck.run_probes(flowcheck.matrix(site, state.plan, clients))
    except (subprocess.CalledProcessError, OSError):
        return None


def leftovers(plan: LabPlan, lab: Path | None = None) -> list[str]:
    """Anything of this lab still on the machine: what `down` must leave none of."""
    lab = lab or lab_dir(plan.site)
    found = [f"netns {n}" for n in [*(n.netns for n in plan.nodes), plan.router_netns]
             if net.netns_exists(n)]
    if net.link_exists(plan.control_link):
        found.append(f"link {plan.control_link}")
    routes = net.run(["ip", "-o", "route", "show"]).stdout.splitlines()
    found += [f"route {r}" for r in routes for cidr in plan.routes if r.startswith(cidr + " ")]
    with open("/proc/self/mounts") as mounts:
        found += [f"mount {line.split()[1]}" for line in mounts
                  if line.split()[1].startswith(str(lab) + "/")
                  or any(line.split()[1] == f"/run/netns/{n.netns}" for n in plan.nodes)]
    machines = [n.machine for n in plan.hosts()]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(f"--machine={m} " in cmd + " " for m in machines) or (
                "http.server" in cmd and f" {plan.control_address.split('/')[0]} " in cmd):
            found.append(f"process {proc.name}: {cmd.strip()[:80]}")
    found += [f"dir {containers.PROPAGATE_DIR / m}" for m in machines
              if (containers.PROPAGATE_DIR / m).exists()]
    found += [f"cgroup {d}" for m in machines for d in cgroups.container_dirs(m) if d.exists()]
    return found
