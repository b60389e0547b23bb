"""Host firewall rules from the site's flow whitelist, through opsctl's own library.

The boundary router (opsctl lab, the `fw` namespace) and every host firewall are
computed by the same functions: `inbound_rules` picks the flows whose destination
includes a host and `rule_line` renders each as one nft rule.

    {{ inventory_dir | opsctl_host_rules(inventory_hostname) }}
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.errors import AnsibleFilterError

# In a checkout, use the opsctl next to these roles (the same commit), not another install.
_REPO = Path(__file__).resolve().parents[3]
if (_REPO / "opsctl" / "__init__.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from opsctl.errors import OpsctlError  # noqa: E402
from opsctl.network.flows import inbound_rules  # noqa: E402
from opsctl.network.nftables import rule_line  # noqa: E402
from opsctl.site.model import Site, load_site  # noqa: E402

_SITES: dict[Path, Site] = {}


def _site(site_dir: str) -> Site:
    key = Path(site_dir).resolve()
    if key not in _SITES:
        try:
            _SITES[key] = load_site(key)
        except OpsctlError as exc:
            raise AnsibleFilterError(f"site {site_dir} is not valid: {exc}") from None
    return _SITES[key]


def opsctl_host_rules(site_dir: str, host: str) -> list[str]:
    """The nft accept rules (one line each) that let a host's whitelisted flows in."""
    site = _site(site_dir)
    if host not in site.hosts:
        raise AnsibleFilterError(f"host {host} is not in site {site.name} ({site_dir})")
    return [rule_line(rule) for rule in inbound_rules(site, host)]


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"opsctl_host_rules": opsctl_host_rules}
