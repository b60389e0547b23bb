"""`opsctl site enrol P` and `opsctl site withdraw P`: a province joins or leaves the national
view (docs/national-view.md) with one command that writes both sides.

The national node gets:
- the province in `provinces` (its expected upload interval);
- an external endpoint per zone the province's uplink leaves from, and the flow that lets
  those reach the national balancer;
- the province's push credential (made now, unless an apply has made it already).

The province gets:
- `site.national` (the gateway's URL and the national CA, copied into its site directory);
- a copy of the credential as its secret `national_uplink`.

Both sites are judged on copies first: an enrolment that would break either is refused (exit 2)
and nothing is written. Then `opsctl apply` on each puts it in force.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from opsctl.errors import InvalidInput, Problem
from opsctl.paths import ensure_private_dir, write_private
from opsctl.pki import pki_dir
from opsctl.secrets import (
    NATIONAL_UPLINK,
    ensure_uplink_credential,
    secrets_dir,
    uplink_secret,
)
from opsctl.site import edit
from opsctl.site.model import Site, load_site
from opsctl.site.new import UPLINK_PORTS
from opsctl.site.schema import NAME

NATIONAL_EXTERNAL = "national"  # what `site new` names the national gateway in a province
CA_FILE = "national-ca.crt"
WRITE_PATH = "metrics/write"  # under the gateway's location on the balancer
MARK = "(opsctl site enrol)"  # in the purpose of the externals enrol writes: withdraw's cue


@dataclass(frozen=True)
class Enrolment:
    province: str
    national: str
    url: str
    sources: dict[str, str]  # the national side's external endpoints: name -> cidr
    flow: str
    changed: bool


def _problem(key: str, reason: str) -> InvalidInput:
    return InvalidInput([Problem("opsctl site enrol", key, reason)])


def _uplink_flow(province: str) -> str:
    return f"uplink-{province}"


def _gateway_url(national: Site, address: ipaddress.IPv4Address) -> str:
    gateway = national.spec.components.get("access-gateway")
    if gateway is None or not gateway.location:
        raise _problem("--national", f"site {national.name} has no access-gateway component "
                       "behind its balancer")
    return f"https://{address}{gateway.location.rstrip('/')}/{WRITE_PATH}"


def _national_address(province: Site) -> ipaddress.IPv4Address:
    ext = province.spec.external.get(NATIONAL_EXTERNAL)
    if ext is None or ext.cidr.num_addresses != 1:
        raise _problem("PROVINCE", f"site {province.name} has no external `{NATIONAL_EXTERNAL}` "
                       "with the national gateway's one address (as `opsctl site new` writes)")
    return ext.cidr.network_address


def _uplink_sources(province: Site) -> dict[str, str]:
    """The national side's names for the zones the province's uplink leaves from:
    {PROVINCE-ZONE: cidr}."""
    hosts: set[str] = set()
    for flow in province.flows:
        if NATIONAL_EXTERNAL in flow.destinations and set(UPLINK_PORTS) <= set(flow.ports):
            for source in flow.sources:
                hosts |= {h.name for h in province.hosts_in(source)}
    if not hosts:
        raise _problem("PROVINCE", f"site {province.name} has no flow to `{NATIONAL_EXTERNAL}` "
                       f"on {UPLINK_PORTS} (uplink-national, as `opsctl site new` writes)")
    zones = sorted({province.hosts[h].zone for h in hosts})
    return {f"{province.name}-{z}": str(province.zones[z].cidr) for z in zones}


def _destination(national: Site, address: ipaddress.IPv4Address) -> str:
    """The national group the gateway's address belongs to (its balancer)."""
    host = next((h.name for h in national.hosts.values() if h.address == address), None)
    if host is None:
        raise _problem("PROVINCE", f"{address} (the province's `{NATIONAL_EXTERNAL}`) is no "
                       f"host of site {national.name}")
    groups = sorted((g for g in national.spec.groups if host in national.groups.get(g, ())),
                    key=lambda g: (len(national.groups[g]), g))
    return groups[0] if groups else national.hosts[host].zone


def _national_edit(province: str, title: str, interval: float, sources: dict[str, str],
                   destination: str) -> edit.Edit:
    def change(data: CommentedMap) -> None:
        site = data["site"]
        provinces = site.setdefault("provinces", CommentedMap())
        if province not in provinces:
            entry = CommentedMap(title=title, upload_interval_hours=interval)
            entry.fa.set_flow_style()  # one line per province, as the reference lists them
            provinces[province] = entry
        external = site.setdefault("external", CommentedMap())
        for name, cidr in sources.items():
            external[name] = CommentedMap(
                cidr=cidr, purpose=f"province {province}'s uplink {MARK}")
        flows = site.setdefault("flows", CommentedSeq())
        wanted = CommentedMap()
        wanted["name"] = _uplink_flow(province)
        wanted["from"] = _flow_seq(list(sources))
        wanted["to"] = destination
        wanted["ports"] = _flow_seq(UPLINK_PORTS)
        wanted["why"] = (f"province {province} uploads its data and pushes its metrics to the "
                         "access gateway")
        edit.put_item(flows, wanted)
    return change


def _flow_seq(items: list) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _province_edit(url: str) -> edit.Edit:
    def change(data: CommentedMap) -> None:
        data["site"]["national"] = CommentedMap(url=url, ca_file=CA_FILE)
    return change


def enrol(province_name: str, national_name: str = "reference",
          upload_interval_hours: float = 24.0) -> Enrolment:
    national = load_site(national_name)
    province = load_site(province_name)
    if national.name == province.name:
        raise _problem("PROVINCE", "a site cannot enrol in itself")
    ca = pki_dir(national.name) / "ca.crt"
    if not ca.is_file():
        raise _problem("--national", f"site {national.name} has no CA yet ({ca}): run "
                       f"`opsctl apply --site {national.name}` (or `opsctl pki init`) first")
    address = _national_address(province)
    url = _gateway_url(national, address)
    sources = _uplink_sources(province)
    existing = national.spec.provinces.get(province.name)
    national_text = edit.edited_text(
        (national.directory / edit.SITE_FILE).read_text(),
        _national_edit(province.name, existing.title if existing else province.name,
                       existing.upload_interval_hours if existing else upload_interval_hours,
                       sources, _destination(national, address)))
    province_files: dict[str, str | bytes] = {
        edit.SITE_FILE: edit.edited_text((province.directory / edit.SITE_FILE).read_text(),
                                         _province_edit(url)),
        CA_FILE: ca.read_bytes()}
    edit.trial(national, {edit.SITE_FILE: national_text})
    edit.trial(province, province_files)

    before = _state(national, province)
    edit.write_files(national, {edit.SITE_FILE: national_text})
    edit.write_files(province, province_files)
    password = ensure_uplink_credential(national.name, province.name)
    province_secret = ensure_private_dir(secrets_dir(province.name)) / NATIONAL_UPLINK
    if not province_secret.is_file() or province_secret.read_text().strip() != password:
        write_private(province_secret, password + "\n")
    return Enrolment(province.name, national.name, url, sources, _uplink_flow(province.name),
                     changed=_state(national, province) != before)


def _state(national: Site, province: Site) -> tuple:
    """What enrolment writes, to tell whether it changed anything."""
    files = (national.directory / edit.SITE_FILE, province.directory / edit.SITE_FILE,
             province.directory / CA_FILE, secrets_dir(province.name) / NATIONAL_UPLINK)
    return tuple(p.read_bytes() if p.is_file() else None for p in files)


@dataclass(frozen=True)
class Withdrawal:
    province: str
    national: str
    removed: list[str]


def withdraw(province_name: str, national_name: str = "reference") -> Withdrawal:
    """Everything enrol wrote, removed from both sides (the province's side only where its
    site is on this control node). The province leaves `provinces` too: the national node
    stops expecting its uploads."""
    national = load_site(national_name)
    try:
        province: Site | None = load_site(province_name)
    except InvalidInput:
        province = None  # not on this control node (or broken): its side is its own
    name = province.name if province is not None else province_name
    if not re.match(NAME, name):
        raise _problem("PROVINCE", f"{name!r} is neither a site here nor a site name")
    removed: list[str] = []

    def change(data: CommentedMap) -> None:
        site = data["site"]
        if name in (site.get("provinces") or {}):
            del site["provinces"][name]
            removed.append(f"{national.name}: provinces.{name}")
        external = site.get("external") or {}
        for ext in [e for e in external if str(e).startswith(f"{name}-")
                    and MARK in str(external[e].get("purpose", ""))]:
            del external[ext]
            removed.append(f"{national.name}: external.{ext}")
        if "external" in site and not site["external"]:
            del site["external"]  # enrol made it: leave the file as it was before
        if edit.drop_item(site.get("flows") or CommentedSeq(), _uplink_flow(name)):
            removed.append(f"{national.name}: flows.{_uplink_flow(name)}")

    text = edit.judge(national, change, edit.SITE_FILE)
    province_text = None
    if province is not None and province.spec.national is not None:
        def forget(data: CommentedMap) -> None:
            del data["site"]["national"]
        province_text = edit.judge(province, forget, edit.SITE_FILE)
    edit.write_files(national, {edit.SITE_FILE: text})
    for secret in (uplink_secret(name), f"{uplink_secret(name)}.bcrypt"):
        path = secrets_dir(national.name) / secret
        if path.is_file():
            path.unlink()
            removed.append(f"{national.name}: secret {secret}")
    if province is not None and province_text is not None:
        edit.write_files(province, {edit.SITE_FILE: province_text})
        removed.append(f"{province.name}: national")
        for path in (province.directory / CA_FILE, secrets_dir(province.name) / NATIONAL_UPLINK):
            if path.is_file():
                path.unlink()
                removed.append(f"{province.name}: {path.name}")
    return Withdrawal(name, national.name, removed)
