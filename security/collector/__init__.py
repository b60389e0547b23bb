"""The host fact collector, one module per concern; each fact group is a `gather_*` function
that only reads the host and a pure `parse_*` function that turns what was read into facts
(tested with recorded outputs, no host needed).

Hosts run it as one stdlib-only script that `security.collector.bundle.collector_script()`
joins from the modules. The names below are the contract the rest of `security` reads
(facts.py, the tests).
"""

from __future__ import annotations

from security.collector.base import SCHEMA, FactError
from security.collector.files import STAT_FILES
from security.collector.integrity import AGENT_GROUP, AIDE_STATUS_FILE, AIDE_STATUS_TIMER
from security.collector.kernel import SYSCTL_KEYS
from security.collector.nginx import NGINX_DEFAULT_PROTOCOLS
from security.collector.packages import parse_dpkg_status
from security.collector.run import FACTS, collect
from security.collector.services import DISABLED_UNITS_DIR, UNITS

__all__ = ["AGENT_GROUP", "AIDE_STATUS_FILE", "AIDE_STATUS_TIMER", "DISABLED_UNITS_DIR",
           "FACTS", "NGINX_DEFAULT_PROTOCOLS", "SCHEMA", "STAT_FILES", "SYSCTL_KEYS", "UNITS",
           "FactError", "collect", "parse_dpkg_status"]
