"""The balancer's side of a deploy: a component's backends file, with drained hosts `down`.

The `lb` role writes the same file from the inventory (roles/lb/templates/backends.conf.j2);
`render_backends` must produce it byte for byte when nothing is drained, so that an apply
after a deploy changes nothing (a unit test holds them together).
"""

from __future__ import annotations

from dataclasses import dataclass

from opsctl.paths import project_root
from opsctl.site.model import Site
from opsctl.site.yamlfile import read_mapping


@dataclass(frozen=True)
class Backend:
    host: str
    address: str
    port: int


def lb_defaults() -> dict:
    return read_mapping(project_root() / "roles" / "lb" / "defaults" / "main.yml")


def backends_path(component: str) -> str:
    return f"{lb_defaults()['lb_backends_dir']}/{component}.conf"


def backends(site: Site, component: str) -> list[Backend]:
    spec = site.spec.components[component]
    return [Backend(h.name, str(h.address), spec.port) for h in site.hosts_in(spec.group)]


def render_backends(component: str, servers: list[Backend], drained: set[str] | frozenset[str],
                    max_fails: int, fail_timeout: str) -> str:
    lines = [f"# {component} backends: written by opsctl (role lb; `opsctl deploy` marks a "
             "drained host down)"]
    for b in servers:
        down = " down" if b.host in drained else ""
        lines.append(f"server {b.address}:{b.port} max_fails={max_fails} "
                     f"fail_timeout={fail_timeout}{down}; # {b.host}")
    return "\n".join(lines) + "\n"


def backends_text(site: Site, component: str, drained: set[str] | frozenset[str]) -> str:
    defaults = lb_defaults()
    return render_backends(component, backends(site, component), drained,
                           int(defaults["lb_max_fails"]), str(defaults["lb_fail_timeout"]))


# nginx's master process id, where Debian's unit writes it (the reload's old workers are its
# children). The swap itself is opsctl/deploy/remote/swap_backends.sh.
NGINX_PID_FILE = "/run/nginx.pid"
