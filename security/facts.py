"""The fact names the catalog may read: the contract between collectors and checks.

Host facts come from the collector (`security/collector/`, run on the host); `context` facts
are what the scanner knows about the host from the site (its whitelisted ports, its zone);
`debian_security` is the host's packages judged on the control node against Debian's security
data (security/debsec.py); network facts
(`site`, `probes`) are built on the control node from the site model and the flow probes.

A fact path is `group.key[.subkey...]`; keys may themselves contain dots or slashes
(`sysctl.net.ipv4.ip_forward`, `files./etc/shadow.mode`): the longest known key wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from security import collector

ANY = None  # any key is allowed below this point


@dataclass(frozen=True)
class FactGroup:
    scope: str  # host | network
    source: str  # where the value comes from, shown as evidence
    keys: frozenset[str] | None  # None: open (any key)
    nested: frozenset[str] | None = None  # allowed keys one level down, None: any


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


FILE_KEYS = _keys("exists", "mode", "owner", "group", "is_dir", "error")
UNIT_KEYS = _keys("present", "active", "enabled", "refuse_manual_stop", "disabled_by_design")

GROUPS: dict[str, FactGroup] = {
    "system": FactGroup("host", "/etc/os-release, /proc/1/environ, systemd-detect-virt",
                        _keys("hostname", "os_id", "os_version", "container", "pid1",
                              "systemd_running")),
    "accounts": FactGroup("host", "/etc/passwd, /etc/shadow (derived: hash schemes, never a hash), "
                          "/etc/group, /etc/default/useradd",
                          _keys("count", "duplicate_uids", "duplicate_names", "uid0_accounts",
                                "empty_password", "missing_shadow_entry", "login_accounts",
                                "system_accounts_with_shell", "system_accounts_ssh_restricted",
                                "system_accounts_unlocked",
                                "root_password_state", "generic_login_accounts",
                                "login_accounts_without_home", "password_accounts",
                                "password_max_days_max", "password_min_days_min",
                                "password_warn_days_min", "password_oldest_change_days",
                                "password_expires",
                                "groups", "group_members", "duplicate_gids",
                                "duplicate_group_names", "gid0_groups", "gid0_primary_accounts",
                                "password_hash_by_account", "password_hash_schemes",
                                "inactive_default", "human_password_accounts",
                                "human_inactive_days_max")),
    "login_defs": FactGroup("host", "/etc/login.defs", ANY),
    "pam": FactGroup("host", "/etc/pam.d/common-* (as pam-auth-update composed them)",
                     _keys("common_auth_modules", "common_password_modules",
                           "common_account_modules", "common_session_modules", "nullok_in",
                           "pwquality_enabled", "faillock_enabled", "password_hash",
                           "pwhistory_remember", "second_factor_modules",
                           "su_restricted_to_group", "faillock_preauth_before_unix",
                           "faillock_authfail_after_unix", "faillock_in_account")),
    "pwquality": FactGroup("host", "/etc/security/pwquality.conf(.d), pam_pwquality arguments",
                           _keys("minlen", "minclass", "retry", "enforce_for_root", "dictcheck",
                                 "sources")),
    "faillock": FactGroup("host", "/etc/security/faillock.conf, pam_faillock arguments",
                          _keys("deny", "unlock_time", "fail_interval", "even_deny_root",
                                "sources")),
    "shell": FactGroup("host", "/etc/profile, /etc/profile.d/*.sh, /etc/bash.bashrc",
                       _keys("tmout", "tmout_readonly", "tmout_sources", "profile_umask")),
    "sshd": FactGroup("host", "sshd -T (effective, drop-ins applied)", ANY),
    "packages": FactGroup("host", "/var/lib/dpkg/status",
                          _keys("count", "installed", "sources"), ANY),
    "services": FactGroup("host", "systemctl show; units off by design: "
                          f"{collector.DISABLED_UNITS_DIR}", frozenset(collector.UNITS), UNIT_KEYS),
    "processes": FactGroup("host", "/proc/*/comm", _keys("names")),
    "audit": FactGroup("host", "kernel audit status (netlink AUDIT_GET), auditctl -l, "
                       "/proc/cmdline",
                       _keys("kernel_available", "unavailable_reason", "enabled", "immutable",
                             "auditctl_present", "rules", "rules_error", "rules_text",
                             "cmdline_audit")),
    "auditd_conf": FactGroup("host", "/etc/audit/auditd.conf",
                             _keys("present", "max_log_file_mb", "num_logs", "max_log_file_action",
                                   "rotate_capacity_mb", "space_left_action",
                                   "admin_space_left_action", "disk_full_action", "log_group",
                                   "oldest_log_days")),
    "rsyslog": FactGroup("host", "/etc/rsyslog.conf, /etc/rsyslog.d/*.conf, journald.conf",
                         _keys("configured", "forward_targets", "forward_tls_targets",
                               "forward_disk_queue_targets", "receiver_tls_ports",
                               "receive_dirs", "received_retention_days", "file_create_mode",
                               "auth_log_files", "journald_persistent")),
    "files": FactGroup("host", "stat()", frozenset(collector.STAT_FILES), FILE_KEYS),
    "sysctl": FactGroup("host", "/proc/sys (the values sysctl -a shows)",
                        frozenset(collector.SYSCTL_KEYS)),
    "sysctl_access": FactGroup("host", "statvfs(/proc/sys), the container type",
                               _keys("read_only", "reason")),
    "listening": FactGroup("host", "/proc/net/tcp, tcp6, udp, udp6",
                           _keys("tcp", "tcp_ports", "udp_ports", "high_risk_ports")),
    "mounts": FactGroup("host", "/proc/mounts, tmpfiles.d",
                        _keys("tmp_fstype", "tmp_options", "tmp_cleanup", "shm_options")),
    "limits": FactGroup("host", "/etc/security/limits.conf(.d), systemd coredump.conf",
                        _keys("hard_core_zero", "coredump_storage")),
    "sudo": FactGroup("host", "/etc/sudoers, /etc/sudoers.d/*",
                      _keys("full_access", "nopasswd_all", "files")),
    "time": FactGroup("host", "chrony.conf, timesyncd.conf",
                      _keys("servers", "serves_others", "local_clock")),
    "nftables": FactGroup("host", "nft -j list chains", _keys("chains", "input_policy", "hooks")),
    "aide": FactGroup("host", "/etc/aide/aide.conf, /var/lib/aide, systemctl is-enabled "
                      "dailyaidecheck.timer, cron tables; the monitoring agent's status: "
                      f"systemctl is-enabled {collector.AIDE_STATUS_TIMER}, stat and `written` "
                      f"of {collector.AIDE_STATUS_FILE}",
                      _keys("config", "database", "database_age_days", "timer_enabled",
                            "cron_entries", "status_timer", "status_file",
                            "status_age_seconds", "status_problem", "status_access",
                            "status_agent_readable")),
    "clamav": FactGroup("host", "/var/lib/clamav", _keys("signatures_age_days")),
    "postgresql": FactGroup("host", "/etc/postgresql/*/*/postgresql.conf, conf.d, pg_hba.conf, "
                            "postgresql.auto.conf",
                            _keys("installed", "clusters", "password_encryption", "ssl",
                                  "weak_hba", "log_connections", "log_disconnections",
                                  "log_statement")),
    "nginx": FactGroup("host", "/etc/nginx",
                       _keys("installed", "ssl_listen", "plain_listen", "ssl_protocols",
                             "ssl_protocols_set")),
    "pgbackrest": FactGroup("host", "/etc/pgbackrest/pgbackrest.conf, repository",
                            _keys("configured", "repository_here", "newest_backup_hours",
                                  "encrypted")),
    "swap": FactGroup("host", "/proc/swaps, /sys/dev/block/*/dm/uuid",
                      _keys("active", "unencrypted")),
    "etcd": FactGroup("host", "/etc/default/etcd (or the file ETCD_CONFIG_FILE names)",
                      _keys("installed", "config", "client_urls", "peer_urls", "plain_urls",
                            "client_cert_auth", "peer_client_cert_auth", "cert_file",
                            "peer_cert_file")),
    "patroni": FactGroup("host", "/etc/patroni/config.yml or /etc/patroni/config.d/*.yml",
                         _keys("installed", "config_files", "rest_listen", "rest_certfile",
                               "rest_keyfile")),
    "walk": FactGroup("host", "one bounded walk of system and home directories",
                      _keys("complete", "covered", "seconds_bound", "world_writable_files",
                            "world_writable_dirs_without_sticky", "world_readable_dumps")),
    # What the scanner knows about a host from its site (absent values: scanned with --local).
    "context": FactGroup("host", "the site model (opsctl)",
                         _keys("site", "zone", "groups", "allowed_tcp_ports", "management_cidrs",
                               "backup_repository_hosts")),
    # A host's packages judged on the control node against Debian's security data in the
    # offline mirror (security/debsec.py); an error when there is no data.
    "debian_security": FactGroup("host", "dpkg's source packages against Debian's security "
                                 "tracker data (bookworm) and the offline mirror's Packages",
                                 _keys("data", "checked", "fixed_in_mirror", "fix_not_in_mirror",
                                       "counts")),
    # Network facts, built on the control node.
    # The policy document: what the whitelist says, not what any device does.
    "site": FactGroup("network", "from the site model (site.yml, hosts.yml): the policy, "
                      "not the devices",
                      _keys("name", "zones_overlapping", "hosts_outside_zone",
                            "zones_without_cidr", "boundary_policy", "unmatched_traffic_logged",
                            "unused_flows", "ssh_sources", "agent_sources", "public_reaches",
                            "secure_reachable_from", "mgmt_inbound_other_ports",
                            "mgmt_groups", "monitoring_hosts_in_mgmt",
                            "log_collector_hosts_in_mgmt", "zones_not_forwarding_logs",
                            "mirror_in_mgmt",
                            "time_source_in_mgmt", "internet_reaches_secure",
                            "secure_zone_exposed_groups", "flows_without_reason")),
    # The enforced state: TCP connects attempted from the site's hosts (and, on a lab, from the
    # public zone's namespace). Every key but `ran` is an error when the probes did not run.
    "probes": FactGroup("network", "TCP probes from the site's hosts (opsctl check --site)",
                        _keys("ran", "count", "not_probed", "unexpected_open",
                              "unexpected_closed", "ssh_unexpected", "agent_unexpected",
                              "public_unexpected", "public_into_secure_open",
                              "internet_into_secure_unexpected", "into_mgmt_unexpected")),
}

HOST_GROUPS = tuple(collector.FACTS)


def split_path(path: str) -> tuple[str, str | None, str | None]:
    """`group.key.sub` → (group, key, rest) using the group's known keys for dotted keys."""
    group, _, rest = path.partition(".")
    if not rest:
        return group, None, None
    spec = GROUPS.get(group)
    if spec is not None and spec.keys is not None:
        for key in sorted(spec.keys, key=len, reverse=True):
            if rest == key:
                return group, key, None
            if rest.startswith(key + "."):
                return group, key, rest[len(key) + 1:]
    key, _, sub = rest.partition(".")
    return group, key, sub or None


def unknown_reason(path: str) -> str | None:
    """Why a fact path names nothing a collector produces, or None when it is known."""
    group, key, sub = split_path(path)
    spec = GROUPS.get(group)
    if spec is None:
        return f"unknown fact group {group!r} (known: {', '.join(sorted(GROUPS))})"
    if key is None:
        return None
    if spec.keys is not None and key not in spec.keys:
        return f"unknown fact {path!r}: {group} has no key {key!r}"
    if sub is not None and spec.nested is not None and sub.split(".")[0] not in spec.nested:
        return f"unknown fact {path!r}: {group}.{key} has no key {sub!r}"
    return None
