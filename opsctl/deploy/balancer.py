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


# Run on the balancer as root, the new backends file on stdin: replace the file, refuse it
# (and put the old one back) if nginx -t does, reload gracefully, then wait until every worker
# of the old configuration has exited — that is, until every request in flight through the
# old configuration has been answered. Exit 3: rejected; 4: old workers still busy.
SWAP_SCRIPT = r"""
set -u
f="$1"; wait="$2"
cat > "$f.new"
cp -p "$f" "$f.bak" 2>/dev/null || true
mv "$f.new" "$f"
if ! out=$(nginx -t 2>&1); then
  if [ -f "$f.bak" ]; then mv "$f.bak" "$f"; fi
  echo "$out"; exit 3
fi
rm -f "$f.bak"
master=$(cat /run/nginx.pid)
old=$(pgrep -P "$master" | tr '\n' ' ')
systemctl reload nginx.service || exit 5
end=$(( $(date +%s) + wait ))
while :; do
  busy=""
  for p in $old; do
    if [ -d "/proc/$p" ] && [ "$(cat /proc/$p/stat 2>/dev/null | cut -d' ' -f4)" = "$master" ]; then
      busy="$busy $p"
    fi
  done
  [ -z "$busy" ] && exit 0
  if [ "$(date +%s)" -ge "$end" ]; then echo "old workers still busy:$busy"; exit 4; fi
  sleep 0.1
done
"""
