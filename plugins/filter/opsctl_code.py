"""The agents' code as one archive per package, through opsctl's library (opsctl.archives).

    {{ monitor_agent_source | opsctl_code_archive }}  the package's Python files, one
        deterministic .tar.gz named by its checksum, built once per content
"""

from __future__ import annotations

import sys
from pathlib import Path

# In a checkout, use the opsctl next to these plugins (the same commit), not another install.
_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "opsctl" / "__init__.py").is_file() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from opsctl.archives import code_archive  # noqa: E402


def opsctl_code_archive(source: str) -> str:
    return str(code_archive(Path(source)))


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"opsctl_code_archive": opsctl_code_archive}
