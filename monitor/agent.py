"""Assemble the agent: configuration, collectors, registry, server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from monitor import __version__
from monitor.collectors.aide import AideCollector
from monitor.collectors.compliance import ComplianceCollector
from monitor.collectors.host import HostCollector
from monitor.collectors.pgbackrest import PgBackRestCollector
from monitor.collectors.postgresql import PostgresCollector
from monitor.collectors.systemd import SystemdCollector
from monitor.collectors.tls import CertificateCollector
from monitor.config import AgentConfig, load_config
from monitor.server import _SCRAPE_SECONDS, ScrapeServer
from monitor.webconfig import load_web_config


class AgentCollector:
    """The agent's own health: version, and how long the previous exposition took."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("opsctl_agent_info", "The monitoring agent's version.",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        took = GaugeMetricFamily("opsctl_agent_last_scrape_duration_seconds",
                                 "Time the previous scrape took to collect and encode.")
        took.add_metric([], _SCRAPE_SECONDS.value)
        yield took


def build_registry(config: AgentConfig,
                   systemd: SystemdCollector | None = None) -> CollectorRegistry:
    """The agent's collectors for `config`; `systemd` stands in for the real one in tests
    (systemctl needs systemd as PID 1)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector())
    registry.register(HostCollector(config.filesystem_types_ignored))
    registry.register(systemd or SystemdCollector(config.units, config.disabled_units_dir))
    registry.register(CertificateCollector(config.certificates))
    registry.register(ComplianceCollector(config.compliance_file))
    registry.register(AideCollector(config.aide_status_file))
    if config.postgresql is not None:
        registry.register(PostgresCollector(config.postgresql))
    if config.pgbackrest_status is not None:
        registry.register(PgBackRestCollector(config.pgbackrest_status,
                                              config.backup_max_age_hours))
    if config.scheduler_history is not None:
        try:
            from monitor.collectors.scheduler import SchedulerCollector  # noqa: PLC0415
        except ImportError:  # the scheduler package is not installed on this host (yet)
            print("monitor: scheduler_history set but the scheduler package is not "
                  "importable; no job metrics", file=sys.stderr)
        else:
            registry.register(SchedulerCollector(config.scheduler_history))
    return registry


def make_server(address: str, port: int, config_path: Path | None) -> ScrapeServer:
    config = load_config(config_path)
    web = load_web_config(config.web_config)
    return ScrapeServer(address, port, build_registry(config), web)
