"""The national access gateway's credentials for the provinces' metrics pushes.

    {{ site.provinces | opsctl_uplink_users(opsctl_secrets_dir) }}  {province: bcrypt hash}
        of each province's uplink secret, which opsctl makes before every run
        (opsctl.secrets.ensure_site_secrets); the passwords never reach the hosts
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

# In a checkout, use the opsctl next to these plugins (the same commit), not another install.
_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "opsctl" / "__init__.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from opsctl.secrets import uplink_secret  # noqa: E402


def opsctl_uplink_users(provinces: Iterable[str], secrets_dir: str) -> dict[str, str]:
    return {str(p): (Path(secrets_dir) / f"{uplink_secret(str(p))}.bcrypt").read_text().strip()
            for p in provinces}


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"opsctl_uplink_users": opsctl_uplink_users}
