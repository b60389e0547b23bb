"""A site loaded and validated: hosts with their zone and address, zones, flows."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from opsctl.errors import InvalidInput, Problem
from opsctl.paths import site_dir
from opsctl.site.inventory import Inventory, load_inventory
from opsctl.site.schema import NAME, FlowSpec, SiteSpec
from opsctl.site.yamlfile import display_path, read_mapping
from scheduler.spec import JobSpec as SchedulerJob

REQUIRED_GROUPS = ("lb", "app", "db", "db_primary", "db_replica", "backup", "monitoring")
# Flow endpoints that are neither groups nor zones.
SPECIAL_ENDPOINTS = ("all", "control")


@dataclass(frozen=True)
class Zone:
    name: str
    cidr: ipaddress.IPv4Network
    purpose: str
    managed: bool
    router_address: ipaddress.IPv4Address

    @property
    def internet(self) -> bool:
        """The zone stands for every address outside the site's other zones (0.0.0.0/0)."""
        return self.cidr.prefixlen == 0


@dataclass(frozen=True)
class HostLogin:
    """A host's own connection settings from the inventory (each overrides site.connection)."""

    address: str | None = None  # opsctl_mgmt_address: reached here, serves on `address`
    port: int | None = None  # ansible_port
    user: str | None = None  # ansible_user


@dataclass(frozen=True)
class Host:
    name: str
    address: ipaddress.IPv4Address
    zone: str
    groups: frozenset[str]
    login: HostLogin = HostLogin()


@dataclass(frozen=True)
class Flow:
    name: str
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    ports: tuple[int, ...]
    proto: str
    why: str


@dataclass(frozen=True)
class Job:
    """A scheduled job and the hosts it runs on (every host of its group)."""

    spec: SchedulerJob
    group: str
    hosts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class MirrorPlace:
    """Where the hosts find the offline mirror: a host of the site (`site.mirror`) or, without
    that section, the control node (`site.control`, as the lab serves it)."""

    host: str | None  # the site's host that serves it; None: the control node
    address: ipaddress.IPv4Address
    port: int
    path: str | None  # the repository's directory on that host (None on the control node)

    @property
    def tls(self) -> bool:
        """A host of the site serves it over TLS with its site certificate (it is scanned
        like any web server there); the lab's control node serves plain HTTP."""
        return self.host is not None

    @property
    def url(self) -> str:
        """The URI base the other hosts' apt source names (a flat repository). apt trusts
        the packages by InRelease's signature either way; TLS is checked against the site CA."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.address}:{self.port}/"

    @property
    def local_url(self) -> str | None:
        """The mirror host's own apt source: the pushed directory itself (no chicken-and-egg
        with the web server it installs from it)."""
        return f"file:{self.path}/" if self.path else None

    def as_vars(self) -> dict[str, object]:
        """What opsctl passes to Ansible as `opsctl_mirror` (roles base and mirror_server)."""
        return {"host": self.host or "", "address": str(self.address), "port": self.port,
                "path": self.path or "", "url": self.url, "local_url": self.local_url or "",
                "tls": self.tls}


@dataclass
class Site:
    name: str
    directory: Path
    inventory_file: Path
    spec: SiteSpec
    zones: dict[str, Zone]
    hosts: dict[str, Host]
    flows: list[Flow]
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)

    @property
    def national_ca_file(self) -> Path | None:
        """The national node's CA on the control node (site.national.ca_file), if any."""
        if self.spec.national is None:
            return None
        return self.directory / Path(self.spec.national.ca_file).expanduser()

    @property
    def control_address(self) -> ipaddress.IPv4Address:
        return self.spec.control.address

    @property
    def mirror_port(self) -> int:
        return self.spec.control.mirror_port

    @property
    def mirror(self) -> MirrorPlace:
        """Where the mirror is served for the hosts (site.mirror, else the control node)."""
        spec = self.spec.mirror
        if spec is None:
            return MirrorPlace(None, self.control_address, self.mirror_port, None)
        return MirrorPlace(spec.host, self.hosts[spec.host].address, spec.port, spec.path)

    @property
    def mirror_url(self) -> str:
        """The mirror's URL base for the hosts, e.g. https://172.31.10.11:3142/."""
        return self.mirror.url

    @property
    def agent_port(self) -> int:
        return self.spec.agent_port

    @property
    def router_name(self) -> str:
        return self.spec.router.name

    def control_zone(self) -> Zone:
        zone = self.zone_of(self.control_address)
        assert zone is not None, "validated: the control address is inside a zone"
        return zone

    def zone_of(self, address: ipaddress.IPv4Address) -> Zone | None:
        """The zone an address lies in: the most specific one, so that an internet zone
        (0.0.0.0/0) holds only what no other zone does."""
        inside = [z for z in self.zones.values() if address in z.cidr]
        return max(inside, key=lambda z: z.cidr.prefixlen, default=None)

    def internal_networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        """The site's own address ranges: every zone but an internet one."""
        return tuple(z.cidr for z in self.zones.values() if not z.internet)

    def component_order(self) -> list[str]:
        """The site's components, each after the ones it depends on (validated acyclic)."""
        return component_order({n: list(c.depends_on) for n, c in self.spec.components.items()})

    def require_hosts(self, names: Iterable[str], option: str = "--limit",
                      also: Iterable[str] = ()) -> list[str]:
        """NAMES as given, each a host of the site (or one of `also`: what OPTION accepts
        besides, e.g. groups); asked before any host is reached. InvalidInput names OPTION,
        every unknown name, the site and its hosts."""
        return require_hosts(self.name, list(self.hosts), names, option, also)

    def select_hosts(self, limit: Iterable[str] | None = None,
                     option: str = "--limit") -> list[str]:
        """The site's hosts, sorted, or those `limit` names (hosts or groups); InvalidInput
        (exit 2) for an unknown name, asked before any host is reached."""
        if not limit:
            return sorted(self.hosts)
        names = self.require_hosts(limit, option, also=self.groups)
        hosts = {h.name for n in names for h in self.hosts_in(n)}
        return sorted(hosts | (set(names) & set(self.hosts)))

    def hosts_in(self, endpoint: str) -> list[Host]:
        """Managed hosts an endpoint (group, zone or `all`) names, in inventory order."""
        if endpoint == "all":
            return list(self.hosts.values())
        if endpoint in self.groups:
            return [h for h in self.hosts.values() if h.name in self.groups[endpoint]]
        if endpoint in self.zones:
            return [h for h in self.hosts.values() if h.zone == endpoint]
        return []


def require_hosts(site_name: str, hosts: list[str], names: Iterable[str],
                  option: str = "--limit", also: Iterable[str] = ()) -> list[str]:
    """Site.require_hosts for a caller that holds the site's host names, not the Site
    (the connection model): the one wording of "no such host"."""
    names = list(names)
    known = set(hosts) | set(also)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput([Problem(option, n, f"no such host in site {site_name} "
                                    f"(hosts: {', '.join(hosts)})") for n in unknown])
    return names


def load_site(site: str | Path) -> Site:
    """Load inventory/NAME (or a site directory) and validate it.

    Raises InvalidInput listing every problem found, one per line.
    """
    directory = site_dir(str(site))
    inv_file = directory / "hosts.yml"
    site_file = directory / "group_vars" / "all" / "site.yml"
    inventory = load_inventory(inv_file)
    raw = read_mapping(site_file)
    sfile = display_path(site_file)
    if "site" not in raw:
        raise InvalidInput(
            [Problem(sfile, "site", "missing (the site's settings live under site:)")]
        )
    try:
        spec = SiteSpec.model_validate(raw["site"])
    except ValidationError as exc:
        raise InvalidInput([_pydantic_problem(sfile, err) for err in exc.errors()]) from None
    return _build(directory, inv_file, inventory, spec, sfile)


def _pydantic_problem(file: str, err: dict) -> Problem:
    key = "site"
    for part in err["loc"]:
        key += f"[{part}]" if isinstance(part, int) else f".{'from' if part == 'from_' else part}"
    reason = err["msg"]
    if err["type"] == "extra_forbidden":
        reason = "unknown key"
    elif err["type"] == "missing":
        reason = "required key is missing"
    if "input" in err and err["type"] not in ("missing", "extra_forbidden") and not isinstance(
        err["input"], dict | list
    ):
        reason += f" (got {err['input']!r})"
    return Problem(file, key, reason)


def _build(
    directory: Path, inv_file: Path, inv: Inventory, spec: SiteSpec, sfile: str
) -> Site:
    """The site from its two files, in the order a reader checks them: zones, the inventory's
    groups, hosts, external endpoints, flows, the rules that span them, jobs. Every problem
    found is reported at once."""
    problems: list[Problem] = []
    zones = _zones(spec)
    problems += _zone_problems(zones, spec, sfile)
    problems += _zone_group_problems(inv, zones)
    problems += _required_group_problems(inv, spec)
    problems += _group_host_clashes(inv)
    hosts, host_problems = _hosts(inv, zones, spec)
    problems += host_problems
    groups = {g: frozenset(inv.members(g)) for g in inv.groups}
    problems += _external_problems(spec, groups, zones, sfile)
    flows, flow_problems = _flows(spec, groups, zones, sfile)
    problems += flow_problems
    problems += _component_problems(spec, groups, flows, sfile)
    problems += _component_metrics_flow_problems(spec, hosts, groups, flows, sfile)
    problems += _connection_problems(spec, hosts, zones, sfile)
    problems += _ssh_flow_problems(spec, hosts, zones, groups, flows, sfile)
    problems += mirror_problems(spec, zones, hosts, flows, groups, sfile)
    site = Site(spec.name, directory, inv_file, spec, zones, hosts, flows, groups)
    problems += _national_problems(site, sfile)
    site.jobs, job_problems = _jobs(site, sfile)
    problems += job_problems
    if problems:
        raise InvalidInput(problems)
    return site


def _zones(spec: SiteSpec) -> dict[str, Zone]:
    """site.zones with each zone's router address (its host number in the zone)."""
    return {name: Zone(name, z.cidr, z.purpose, z.managed,
                       z.cidr.network_address + spec.router.host_number)
            for name, z in spec.zones.items()}


def _zone_group_problems(inv: Inventory, zones: dict[str, Zone]) -> list[Problem]:
    """Every managed zone is a group in hosts.yml that holds that zone's hosts; an unmanaged
    zone holds none."""
    problems = []
    for name, zone in zones.items():
        if zone.managed and name not in inv.groups:
            problems.append(Problem(inv.file, f"all.children.{name}",
                                    f"zone group {name!r} (site.zones.{name}) is missing"))
        if not zone.managed and inv.members(name):
            problems.append(Problem(inv.file, inv.group_paths[name],
                                    f"zone {name} is not managed (managed: false) but holds hosts"))
    return problems


def _required_group_problems(inv: Inventory, spec: SiteSpec) -> list[Problem]:
    """The groups opsctl's roles need (and site.groups names) exist and hold hosts."""
    problems = []
    for group in sorted(set(REQUIRED_GROUPS) | set(spec.groups)):
        if group not in inv.groups:
            problems.append(Problem(inv.file, f"all.children.{group}",
                                    "required group is missing"))
        elif not inv.members(group):
            problems.append(Problem(inv.file, inv.group_paths[group],
                                    "required group has no hosts"))
    return problems


def _group_host_clashes(inv: Inventory) -> list[Problem]:
    return [Problem(inv.file, inv.group_paths[group], f"{group!r} is both a group and a host")
            for group in inv.groups if group in inv.hosts]


def _hosts(inv: Inventory, zones: dict[str, Zone],
           spec: SiteSpec) -> tuple[dict[str, Host], list[Problem]]:
    """Each inventory host with its one zone, its address in it and its login settings."""
    problems: list[Problem] = []
    hosts: dict[str, Host] = {}
    seen_addr: dict[ipaddress.IPv4Address, str] = {}
    for hname in inv.hosts:
        host = _host(inv, hname, zones, spec, seen_addr, problems)
        if host is not None:
            hosts[hname] = host
    return hosts, problems


def _host(inv: Inventory, hname: str, zones: dict[str, Zone], spec: SiteSpec,
          seen_addr: dict[ipaddress.IPv4Address, str], problems: list[Problem]) -> Host | None:
    """One host, or None when its zone or address cannot be known (the problem is appended);
    `seen_addr` collects the addresses taken so far."""
    ifile, ihost = inv.file, inv.hosts[hname]
    where = next(iter(ihost.declared_at.values()))
    if hname in {spec.router.name, "control", "public"}:
        problems.append(Problem(ifile, where, f"host name {hname!r} is reserved"))
    zone = _host_zone(ifile, where, hname, inv, zones, problems)
    if zone is None:
        return None
    declared = ihost.declared_at.get(zone.name, where)
    addr = _host_address(ifile, f"{declared}.ansible_host", ihost.vars.get("ansible_host"),
                         problems)
    if addr is None:
        return None
    problems += _address_problems(ifile, f"{declared}.ansible_host", addr, zone, spec)
    if addr in seen_addr:
        problems.append(Problem(ifile, f"{declared}.ansible_host",
                                f"duplicate address {addr} (also host {seen_addr[addr]})"))
    seen_addr[addr] = hname
    login, login_problems = _host_login(ifile, declared, ihost.vars)
    problems.extend(login_problems)
    return Host(hname, addr, zone.name, frozenset(inv.host_groups(hname)), login)


def _host_zone(ifile: str, where: str, hname: str, inv: Inventory, zones: dict[str, Zone],
               problems: list[Problem]) -> Zone | None:
    """The one zone group that holds the host."""
    in_zones = sorted(z for z in zones if hname in inv.members(z))
    if not in_zones:
        problems.append(Problem(ifile, where, f"host {hname} is in no zone group "
                                f"(one of {', '.join(z for z in zones if zones[z].managed)})"))
        return None
    if len(in_zones) > 1:
        problems.append(Problem(ifile, where, f"host {hname} is in more than one zone: "
                                f"{', '.join(in_zones)}"))
        return None
    return zones[in_zones[0]]


def _host_address(ifile: str, addr_path: str, raw_addr: object,
                  problems: list[Problem]) -> ipaddress.IPv4Address | None:
    """ansible_host as an IPv4 address."""
    if raw_addr is None:
        problems.append(Problem(ifile, addr_path, "missing: every host needs its address"))
        return None
    try:
        return ipaddress.IPv4Address(str(raw_addr))
    except ValueError:
        problems.append(Problem(ifile, addr_path, f"{raw_addr!r} is not an IPv4 address"))
        return None


def _address_problems(ifile: str, addr_path: str, addr: ipaddress.IPv4Address, zone: Zone,
                      spec: SiteSpec) -> list[Problem]:
    """A host's address is a host address of its zone, neither the router's nor the control
    node's."""
    if addr not in zone.cidr:
        reason = f"{addr} is outside zone {zone.name} ({zone.cidr})"
    elif addr in (zone.cidr.network_address, zone.cidr.broadcast_address):
        reason = f"{addr} is not a host address of {zone.cidr}"
    elif addr == zone.router_address:
        reason = f"{addr} is the router's address"
    elif addr == spec.control.address:
        reason = f"{addr} is the control node's address"
    else:
        return []
    return [Problem(ifile, addr_path, reason)]


def _external_problems(spec: SiteSpec, groups: dict[str, frozenset[str]],
                       zones: dict[str, Zone], sfile: str) -> list[Problem]:
    """site.external names are new, and their ranges lie outside the site's zones."""
    problems = []
    for name, ext in spec.external.items():
        if name in groups or name in zones or name in SPECIAL_ENDPOINTS:
            problems.append(Problem(sfile, f"site.external.{name}",
                                    f"{name!r} is already a group, zone or special endpoint"))
        for zone in zones.values():
            if not zone.internet and ext.cidr.overlaps(zone.cidr):
                problems.append(Problem(sfile, f"site.external.{name}.cidr",
                                        f"{ext.cidr} overlaps zone {zone.name} ({zone.cidr})"))
    return problems


def _flows(spec: SiteSpec, groups: dict[str, frozenset[str]], zones: dict[str, Zone],
           sfile: str) -> tuple[list[Flow], list[Problem]]:
    """site.flows: unique names, endpoints that are groups, zones, externals or special."""
    known = set(groups) | set(zones) | set(SPECIAL_ENDPOINTS) | set(spec.external)
    problems: list[Problem] = []
    flows: list[Flow] = []
    seen_flows: set[str] = set()
    for i, f in enumerate(spec.flows):
        fpath = f"site.flows[{i}]"
        if f.name in seen_flows:
            problems.append(Problem(sfile, f"{fpath}.name", f"duplicate flow name {f.name!r}"))
        seen_flows.add(f.name)
        problems.extend(_endpoint_problems(sfile, fpath, "from", f.from_, known))
        problems.extend(_endpoint_problems(sfile, fpath, "to", f.to, known))
        flows.append(_flow(f))
    return flows, problems


def _jobs(site: Site, sfile: str) -> tuple[list[Job], list[Problem]]:
    """site.jobs: unique names, each on the hosts of a group or zone that has some."""
    problems: list[Problem] = []
    jobs: list[Job] = []
    seen_jobs: set[str] = set()
    for i, j in enumerate(site.spec.jobs):
        jpath = f"site.jobs[{i}]"
        if j.name in seen_jobs:
            problems.append(Problem(sfile, f"{jpath}.name", f"duplicate job name {j.name!r}"))
        seen_jobs.add(j.name)
        job_hosts = site.hosts_in(j.group)
        if j.group != "all" and j.group not in site.groups and j.group not in site.zones:
            problems.append(Problem(sfile, f"{jpath}.group",
                                    f"unknown group {j.group!r} (known: all, "
                                    f"{', '.join(sorted(set(site.groups) | set(site.zones)))})"))
        elif not job_hosts:
            problems.append(Problem(sfile, f"{jpath}.group", f"group {j.group!r} has no hosts"))
        jobs.append(Job(j.to_scheduler(), j.group, tuple(h.name for h in job_hosts)))
    return jobs, problems


def _host_login(ifile: str, where: str, hvars: dict) -> tuple[HostLogin, list[Problem]]:
    problems = []
    address = hvars.get("opsctl_mgmt_address")
    if address is not None:
        try:
            address = str(ipaddress.ip_address(str(address)))
        except ValueError:
            problems.append(Problem(ifile, f"{where}.opsctl_mgmt_address",
                                    f"{address!r} is not an IP address"))
            address = None
    port = hvars.get("ansible_port")
    if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
        problems.append(Problem(ifile, f"{where}.ansible_port", f"{port!r} is not a port"))
        port = None
    user = hvars.get("ansible_user")
    if user is not None and not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", str(user)):
        problems.append(Problem(ifile, f"{where}.ansible_user", f"{user!r} is not a user name"))
        user = None
    return HostLogin(address, port, user), problems


def _connection_problems(spec: SiteSpec, hosts: dict[str, Host], zones: dict[str, Zone],
                         sfile: str) -> list[Problem]:
    """A bastion that is a host of the site must be one of its hosts in the control zone."""
    jump = spec.connection.jump
    if jump is None or jump.host is None:
        return []
    key = "site.connection.jump.host"
    if jump.host not in hosts:
        return [Problem(sfile, key, f"unknown host {jump.host!r} (hosts: {', '.join(hosts)})")]
    control_zone = next((z.name for z in zones.values()
                         if not z.internet and spec.control.address in z.cidr), None)
    if hosts[jump.host].zone != control_zone:
        return [Problem(sfile, key, f"{jump.host} is in zone {hosts[jump.host].zone}; the bastion "
                        f"must be in the control node's zone ({control_zone})")]
    return []


def _ssh_flow_problems(spec: SiteSpec, hosts: dict[str, Host], zones: dict[str, Zone],
                       groups: dict[str, frozenset[str]], flows: list[Flow],
                       sfile: str) -> list[Problem]:
    """opsctl must be let in where it logs in: a tcp flow from the control node (or its zone,
    or the bastion) to every host on its SSH port (the lab's hosts too: they answer on it)."""
    control_zone = next((z for z in zones.values()
                         if not z.internet and spec.control.address in z.cidr), None)
    jump = spec.connection.jump.host if spec.connection.jump else None

    def covers(endpoint: str, host: Host | None) -> bool:
        if endpoint == "all":
            return host is not None
        if host is None:  # the control node as a source
            return endpoint == "control" or (control_zone is not None
                                             and endpoint == control_zone.name)
        return endpoint == host.zone or host.name in groups.get(endpoint, ())

    blocked = []
    for host in hosts.values():
        port = host.login.port or spec.connection.port
        if host.name == jump and spec.connection.jump and spec.connection.jump.port:
            port = spec.connection.jump.port
        sources = [None] if host.name == jump or jump is None else [hosts.get(jump)]
        if not any(f.proto == "tcp" and port in f.ports
                   and any(covers(d, host) for d in f.destinations)
                   and any(covers(s, src) for s in f.sources for src in sources)
                   for f in flows):
            blocked.append(f"{host.name}:{port}")
    if not blocked:
        return []
    return [Problem(sfile, "site.connection.port", "no tcp flow lets opsctl reach "
                    f"{', '.join(blocked)} (from the control node, or through the bastion); "
                    "add the port to the flow that lets the management zone in")]


def _endpoint_hosts(endpoint: str, hosts: dict[str, Host],
                    groups: dict[str, frozenset[str]]) -> set[str]:
    """Managed hosts an endpoint names (Site.hosts_in before the Site exists)."""
    if endpoint == "all":
        return set(hosts)
    if endpoint in groups:
        return set(groups[endpoint]) & set(hosts)
    return {h.name for h in hosts.values() if h.zone == endpoint}


def mirror_unreached(mirror_host: str, port: int, hosts: dict[str, Host],
                     groups: dict[str, frozenset[str]], flows: list[Flow]) -> list[Host]:
    """Managed hosts (other than the mirror host) that no tcp flow lets reach it on `port`."""
    reached: set[str] = set()
    for f in flows:
        if f.proto != "tcp" or port not in f.ports:
            continue
        if any(mirror_host in _endpoint_hosts(d, hosts, groups) for d in f.destinations):
            for s in f.sources:
                reached |= _endpoint_hosts(s, hosts, groups)
    return [h for h in hosts.values() if h.name != mirror_host and h.name not in reached]


def mirror_problems(spec: SiteSpec, zones: dict[str, Zone], hosts: dict[str, Host],
                    flows: list[Flow], groups: dict[str, frozenset[str]],
                    sfile: str) -> list[Problem]:
    """site.mirror: a managed host in the control node's zone that every host can reach."""
    if spec.mirror is None:
        return []
    name, port = spec.mirror.host, spec.mirror.port
    control_zone = next((z.name for z in zones.values()
                         if not z.internet and spec.control.address in z.cidr), None)
    if name not in hosts:
        return [Problem(sfile, "site.mirror.host", f"unknown host {name!r} (a host of "
                        f"hosts.yml in zone {control_zone or 'of the control node'})")]
    if control_zone is not None and hosts[name].zone != control_zone:
        return [Problem(sfile, "site.mirror.host", f"{name} is in zone {hosts[name].zone}; the "
                        f"mirror is served from the control node's zone ({control_zone})")]
    unreached = mirror_unreached(name, port, hosts, groups, flows)
    if not unreached:
        return []
    zones_missing = sorted({h.zone for h in unreached})
    return [Problem(sfile, "site.mirror.host", f"no flow lets zone(s) {', '.join(zones_missing)} "
                    f"reach {name}:{port} (add to site.flows: {{name: mirror, from: all, "
                    f"to: <a group holding {name}>, ports: [{port}]}})")]


def _zone_problems(zones: dict[str, Zone], spec: SiteSpec, sfile: str) -> list[Problem]:
    """Router host numbers, overlaps and the control node's zone.

    An internet zone (0.0.0.0/0, unmanaged: the schema enforces that) stands for "everything
    else": it overlaps every zone by construction, has no router leg of ours to number, and
    cannot hold the control node.
    """
    problems = []
    for zone in zones.values():
        router = zone.router_address
        if not zone.internet and (router not in zone.cidr
                                  or router == zone.cidr.broadcast_address):
            problems.append(Problem(sfile, f"site.zones.{zone.name}.cidr",
                                    f"{zone.cidr} has no host number {spec.router.host_number} "
                                    "for the router"))
    real = [z for z in zones.values() if not z.internet]
    for i, a in enumerate(real):
        for b in real[i + 1:]:
            if a.cidr.overlaps(b.cidr):
                problems.append(Problem(sfile, f"site.zones.{b.name}.cidr",
                                        f"{b.cidr} overlaps zone {a.name} ({a.cidr})"))
    if not any(spec.control.address in z.cidr for z in real):
        problems.append(Problem(sfile, "site.control.address",
                                f"{spec.control.address} is inside no zone"))
    return problems


def _endpoint_problems(
    file: str, fpath: str, key: str, endpoints: list[str], known: set[str]
) -> list[Problem]:
    return [
        Problem(file, f"{fpath}.{key}",
                f"unknown group or zone {e!r} (known: {', '.join(sorted(known))})")
        for e in endpoints
        if e not in known
    ]


def _flow(f: FlowSpec) -> Flow:
    return Flow(f.name, tuple(f.from_), tuple(f.to), tuple(f.ports), f.proto, f.why)


# --- components (opsctl deploy) ---------------------------------------------------------
def component_order(depends_on: dict[str, list[str]]) -> list[str]:
    """Every component after the ones it depends on (ties by name): the order apply installs
    them in. Raises ValueError naming a cycle (validation reports it as a problem)."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ValueError(" -> ".join([*path[path.index(name):], name]))
        state[name] = "visiting"
        for dep in sorted(depends_on.get(name, [])):
            if dep in depends_on:
                visit(dep, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in sorted(depends_on):
        visit(name, [])
    return order


def _component_problems(spec: SiteSpec, groups: dict[str, frozenset[str]], flows: list[Flow],
                        sfile: str) -> list[Problem]:
    """Rules for site.components that need the inventory and the flows.

    Artifacts (present, checksum) are checked where they are used, before any host is
    touched: opsctl.deploy.artifacts (apply and deploy).
    """
    problems: list[Problem] = []
    ports: dict[tuple[str, int], str] = {}
    locations: dict[str, str] = {}
    for name, comp in spec.components.items():
        key = f"site.components.{name}"
        if not re.match(NAME, name):
            problems.append(Problem(sfile, key, f"component name must match {NAME}"))
        if comp.group not in groups:
            problems.append(Problem(sfile, f"{key}.group", f"unknown group {comp.group!r} "
                                    f"(known: {', '.join(sorted(groups))})"))
        elif not groups[comp.group]:
            problems.append(Problem(sfile, f"{key}.group", f"group {comp.group!r} has no hosts"))
        if comp.version not in comp.releases:
            problems.append(Problem(sfile, f"{key}.version", f"{comp.version!r} is not one of "
                                    f"its releases ({', '.join(comp.releases)})"))
        for dep in comp.depends_on:
            if dep == name or dep not in spec.components:
                problems.append(Problem(sfile, f"{key}.depends_on",
                                        f"unknown component {dep!r}" if dep != name
                                        else "a component cannot depend on itself"))
        other = ports.get((comp.group, comp.port))
        if other:
            problems.append(Problem(sfile, f"{key}.port", f"port {comp.port} on group "
                                    f"{comp.group} is already {other}'s"))
        ports[(comp.group, comp.port)] = name
        if comp.location in locations:
            problems.append(Problem(sfile, f"{key}.location", f"{comp.location} is already "
                                    f"{locations[comp.location]}'s"))
        locations[comp.location] = name
        if comp.group in groups and not any(
                "lb" in f.sources and comp.group in f.destinations and comp.port in f.ports
                for f in flows):
            problems.append(Problem(sfile, f"{key}.port", f"no flow lets lb reach "
                                    f"{comp.group}:{comp.port} (add it to site.flows)"))
    known = {name: [d for d in comp.depends_on if d in spec.components and d != name]
             for name, comp in spec.components.items()}
    try:
        component_order(known)
    except ValueError as cycle:
        problems.append(Problem(sfile, "site.components", f"depends_on has a cycle: {cycle}"))
    return problems


def _component_metrics_flow_problems(spec: SiteSpec, hosts: dict[str, Host],
                                     groups: dict[str, frozenset[str]], flows: list[Flow],
                                     sfile: str) -> list[Problem]:
    """Prometheus (the monitoring group) must be let in where a component serves metrics."""
    problems = []
    monitors = set(groups.get("monitoring", ())) & set(hosts)
    for name, comp in spec.components.items():
        if comp.metrics_port is None or comp.group not in groups:
            continue
        blocked = sorted(
            f"{src}->{dst}" for src in monitors for dst in set(groups[comp.group]) & set(hosts)
            if not any(f.proto == "tcp" and comp.metrics_port in f.ports
                       and any(src in _endpoint_hosts(e, hosts, groups) for e in f.sources)
                       and any(dst in _endpoint_hosts(e, hosts, groups) for e in f.destinations)
                       for f in flows))
        if blocked:
            problems.append(Problem(sfile, f"site.components.{name}.metrics_port",
                                    f"no tcp flow lets monitoring reach {comp.group}:"
                                    f"{comp.metrics_port} ({', '.join(blocked)}); "
                                    "add it to site.flows"))
    return problems
# --- end components ---------------------------------------------------------------------


def _national_problems(site: Site, sfile: str) -> list[Problem]:
    """A province's push to the national node: its CA is at hand, and where the URL names an
    address, a flow lets every monitoring host reach it (the uplink, as `site new` writes)."""
    national = site.spec.national
    if national is None:
        return []
    problems = []
    ca = site.national_ca_file
    if ca is not None and not ca.is_file():
        problems.append(Problem(sfile, "site.national.ca_file", f"{ca} is not a file"))
    parsed = urllib.parse.urlsplit(national.url)
    try:
        port = parsed.port or 443
    except ValueError:
        return [*problems, Problem(sfile, "site.national.url", "the port is not a number "
                                   "in 1-65535")]
    try:
        address = ipaddress.IPv4Address(parsed.hostname or "")
    except ValueError:
        return problems  # a name: where it leads is the province's resolver's business
    blocked = sorted(
        h for h in site.groups.get("monitoring", ()) if h in site.hosts
        and not any(f.proto == "tcp" and port in f.ports
                    and any(h in _endpoint_hosts(e, site.hosts, site.groups) for e in f.sources)
                    and any(address in site.spec.external[e].cidr
                            for e in f.destinations if e in site.spec.external)
                    for f in site.flows))
    if blocked:
        problems.append(Problem(sfile, "site.national.url",
                                f"no tcp flow lets {', '.join(blocked)} reach {address}:{port} "
                                "(an external endpoint); add it to site.flows"))
    return problems
