"""The hardening role against the catalog, without a host: every check whose remediation names
one of the role's concern tags is fixed by a task tagged with that check's id (ansible-lockdown
style), every check id a task names exists, and every task carries `hardening` + a concern tag."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from opsctl.mirror.packages import role_packages
from security.schema import load_catalog

ROLE = Path(__file__).resolve().parents[2] / "roles" / "hardening"
CHECKS = {c.id: c for c in load_catalog()}


def tasks() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((ROLE / "tasks").glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            out.append((path.name, task))
    return out


def role_tags() -> list[list[str]]:
    return [t.get("tags", []) for name, t in tasks() if name != "main.yml"]


def concern_tags() -> set[str]:
    return {tag for tags in role_tags() for tag in tags if tag.startswith("hardening-")}


def test_every_task_is_tagged_hardening_and_a_concern() -> None:
    for name, task in tasks():
        if name == "main.yml":
            assert "ansible.builtin.import_tasks" in task, task["name"]
            continue
        tags = task.get("tags", [])
        assert "hardening" in tags, (name, task["name"])
        assert any(t.startswith("hardening-") for t in tags), (name, task["name"])


def test_every_check_the_role_claims_is_fixed_by_a_task_tagged_with_its_id() -> None:
    tagged = {tag for tags in role_tags() for tag in tags}
    claimed = {cid for cid, c in CHECKS.items()
               if c.spec.remediation.tag in concern_tags()}
    assert len(claimed) >= 70
    assert sorted(claimed - tagged) == []


def test_every_check_id_a_task_names_is_in_the_catalog() -> None:
    ids = {tag for tags in role_tags() for tag in tags
           if tag != "hardening" and not tag.startswith("hardening-")}
    assert sorted(ids - set(CHECKS)) == []


def test_the_role_concerns_are_the_catalog_remediation_tags() -> None:
    catalog_tags = {c.spec.remediation.tag for c in CHECKS.values() if c.spec.remediation.tag}
    assert concern_tags() <= catalog_tags
    assert {"hardening-sshd", "hardening-pam", "hardening-login-defs", "hardening-sysctl",
            "hardening-auditd", "hardening-permissions", "hardening-packages",
            "hardening-accounts", "hardening-aide", "hardening-rsyslog", "hardening-shell",
            "hardening-sudo", "hardening-tmp"} <= concern_tags()


def test_the_mirror_carries_the_role_packages() -> None:
    packages = role_packages(ROLE.parent)["hardening"]
    assert {"auditd", "aide", "libpam-pwquality"} <= set(packages)


def test_every_default_is_declared_in_the_argument_specs() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert sorted(set(defaults) ^ set(options)) == []


def _render(expression: str, **variables: object) -> str:
    import jinja2

    env = jinja2.Environment()
    env.filters["bool"] = bool  # Ansible's, for the values these tests pass
    return env.from_string(expression).render(**variables)


def test_the_sshd_drop_in_sorts_first_and_keeps_the_login_users_way_in() -> None:
    """Root keeps key-only login where root converges; a site that logs in as another user
    refuses root entirely, and that user is allowed in and is the admin."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    name = Path(defaults["hardening_sshd_dropin"]).name
    assert name < "10-" and name.startswith("00-")
    check = yaml.safe_load((ROLE.parents[1] / "security" / "catalog" / "host" /
                            "sshd_permit_root_login.yml").read_text())
    permit = defaults["hardening_sshd_permit_root_login"]
    assert _render(permit) == "prohibit-password"
    assert _render(permit, opsctl_login_user="root") == "prohibit-password"
    assert _render(permit, opsctl_login_user="admin2") == "no"
    assert {_render(permit), _render(permit, opsctl_login_user="x")} <= set(check["pass"]["value"])
    admin = defaults["hardening_admin_user"]
    assert _render(admin) == "ops"
    assert _render(admin, opsctl_login_user="admin2") == "admin2"
    assert "{{ hardening_admin_user }}" in defaults["hardening_sshd_allow_users"]


def test_the_login_users_nopasswd_grant_is_kept_only_when_the_site_works_so() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    sudoers = defaults["hardening_admin_sudoers"]
    common = {"hardening_admin_user": "ops", "hardening_admin_group": "sudo"}
    kept = _render(sudoers, hardening_admin_keep_nopasswd=True, **common)
    assert "ops ALL=(ALL:ALL) NOPASSWD: ALL" in kept
    dropped = _render(sudoers, hardening_admin_keep_nopasswd=False, **common)
    assert "NOPASSWD" not in dropped and "Nothing is granted here." in dropped


def test_every_remediation_through_an_opsctl_command_names_one_that_exists() -> None:
    from opsctl.cli.main import COMMANDS  # noqa: PLC0415

    named = {c.id: c.spec.remediation.opsctl for c in CHECKS.values()
             if c.spec.remediation.opsctl}
    assert named["packages_known_vulnerable"] == "patch"
    assert {cid: cmd for cid, cmd in named.items() if cmd.split()[0] not in COMMANDS} == {}


def test_every_remediation_through_apply_names_a_tag_some_role_carries() -> None:
    """`opsctl apply --tags X` in a report must select something, or the fix is a dead end."""
    carried: set[str] = set()
    for path in (ROLE.parent).glob("*/tasks/*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            carried |= set(task.get("tags", []))
    named = {c.spec.remediation.apply: c.id for c in CHECKS.values() if c.spec.remediation.apply}
    assert {tag: cid for tag, cid in named.items() if tag not in carried} == {}


def test_auditd_left_off_by_design_is_recorded_with_the_reason_and_forgotten_when_it_runs() -> None:
    """Where the kernel refuses audit: auditd disabled, its installation's failure cleared (or
    systemd stays degraded), the reason written where the agent and the collector read it;
    where audit works the record goes. Each exactly under the kernel's answer."""
    auditd = {t["name"]: t for name, t in tasks() if name == "auditd.yml"}
    available = "hardening_audit_found.audit.kernel_available"
    record = auditd["Record why auditd is left off"]
    assert record["ansible.builtin.copy"]["dest"] == (
        "{{ hardening_disabled_units_dir }}/auditd.service")
    assert record["ansible.builtin.copy"]["content"] == "{{ hardening_audit_found.audit.reason }}\n"
    assert (record["ansible.builtin.copy"]["owner"], record["ansible.builtin.copy"]["mode"]) == (
        "root", "0644")
    assert record["when"] == f"not {available}"
    removed = auditd["Remove the record where auditd runs"]
    assert removed["ansible.builtin.file"]["state"] == "absent"
    assert removed["ansible.builtin.file"]["path"] == record["ansible.builtin.copy"]["dest"]
    assert removed["when"] == available
    unit = auditd["Run auditd, now and at boot, where the kernel allows audit; leave it off "
                  "elsewhere"]["ansible.builtin.systemd_service"]
    for kernel_allows, enabled, state in ((True, "True", "started"), (False, "False", "")):
        found = {"audit": {"kernel_available": kernel_allows}}
        assert _render(unit["enabled"], hardening_audit_found=found) == enabled
        assert _render(unit["state"], hardening_audit_found=found, omit="") == state
    reset = auditd["Clear the failure auditd's installation left where it cannot run"]
    assert reset["ansible.builtin.command"] == "systemctl reset-failed auditd.service"
    assert f"not {available}" in reset["when"]


def _reads(task: dict, handlers: list[dict]) -> str:
    """The text a task's variables are read from: itself, its template, the handlers it
    notifies (they run in the same tag selection)."""
    text = yaml.safe_dump(task)
    template = (ROLE / "templates" / str(task.get("ansible.builtin.template", {}).get("src", "")))
    if template.is_file():
        text += template.read_text()
    notify = task.get("notify", [])
    notify = [notify] if isinstance(notify, str) else notify
    for handler in handlers:
        if handler["name"] in notify or handler.get("listen") in notify:
            text += yaml.safe_dump(handler)
    return text


def test_whatever_tags_select_a_task_also_select_the_reads_it_uses() -> None:
    """`opsctl apply --tags X` (a check's remediation) runs the tasks tagged X; each must find
    the registered results it reads, so it carries no tag the task that registers them lacks.
    The facts reads (library/opsctl_hardening_facts.py) carry the tags of all their readers."""
    handlers = yaml.safe_load((ROLE / "handlers" / "main.yml").read_text())
    role = [(name, task) for name, task in tasks() if name != "main.yml"]
    registered = {task["register"]: set(task["tags"]) for _, task in role if "register" in task}
    assert {"hardening_host", "hardening_accounts_found", "hardening_audit_found",
            "hardening_files_found"} <= set(registered)
    missing = {}
    for _, task in role:
        text = _reads(task, handlers)
        for var, producer in registered.items():
            extra = set(task["tags"]) - producer
            if task.get("register") != var and re.search(rf"\b{var}\b", text) and extra:
                missing[f"{task['name']} <- {var}"] = sorted(extra)
    assert missing == {}


def test_skipping_aide_skips_only_aide() -> None:
    """The province lab (and an operator short of time) converges with `--skip-tags
    hardening-aide`: that may leave out AIDE's own tasks, never another concern's packages
    (a shared install task once took auditd and libpam-pwquality with it, and the PAM task
    then changed on every later apply)."""
    skipped = [(name, task) for name, task in tasks()
               if "hardening-aide" in task.get("tags", [])]
    assert skipped
    for name, task in skipped:
        assert name == "aide.yml" or "aide" in task["name"].lower(), (name, task["name"])
        others = {t for t in task["tags"] if t.startswith("hardening-")} - {
            "hardening-aide", "hardening-packages"}
        assert not others, (task["name"], others)
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert set(defaults["hardening_aide_packages"]) == {"aide", "aide-common"}
    assert not {"aide", "aide-common"} & set(defaults["hardening_packages"])
