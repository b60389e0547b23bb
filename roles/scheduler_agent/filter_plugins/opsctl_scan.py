"""What a host's own compliance scan needs from the control node, through opsctl's library.

    {{ inventory_dir | opsctl_check_context(inventory_hostname) }}  what the site says about
        the host (zone, groups, whitelisted ports): the same as `opsctl check --site` uses
    {{ 'security' | opsctl_security_bundle }}  the scanner's archive (opsctl.check.bundle)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

# In a checkout, use the opsctl next to these roles (the same commit), not another install.
_REPO = Path(__file__).resolve().parents[3]
if (_REPO / "opsctl" / "__init__.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from opsctl.check.bundle import build_bundle  # noqa: E402
from opsctl.check.netfacts import host_context  # noqa: E402
from opsctl.errors import OpsctlError  # noqa: E402
from opsctl.site.model import load_site  # noqa: E402


def opsctl_check_context(site_dir: str, host: str) -> dict[str, Any]:
    try:
        site = load_site(Path(site_dir))
    except OpsctlError as exc:
        raise AnsibleFilterError(f"site {site_dir} is not valid: {exc}") from None
    if host not in site.hosts:
        raise AnsibleFilterError(f"host {host} is not in site {site.name} ({site_dir})")
    return {"host": host, **host_context(site, host)}


def opsctl_security_bundle(_what: str) -> str:
    return str(build_bundle())


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"opsctl_check_context": opsctl_check_context,
                "opsctl_security_bundle": opsctl_security_bundle}
