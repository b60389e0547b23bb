"""Entry point: the command groups, and the one place errors become messages and exit codes."""

from __future__ import annotations

import sys

import click

from opsctl import __version__
from opsctl.cli import apply as apply_cmds
from opsctl.cli import audit as audit_cmds
from opsctl.cli import backup as backup_cmds
from opsctl.cli import check as check_cmds
from opsctl.cli import db as db_cmds
from opsctl.cli import deploy as deploy_cmds
from opsctl.cli import harden as harden_cmds
from opsctl.cli import jobs as jobs_cmds
from opsctl.cli import lab as lab_cmds
from opsctl.cli import mirror as mirror_cmds
from opsctl.cli import site as site_cmds
from opsctl.cli import status as status_cmds
from opsctl.errors import OpsctlError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opsctl")
def cli() -> None:
    """Provision, deploy, watch and prove the 农地云 node."""


cli.add_command(site_cmds.site)
cli.add_command(lab_cmds.lab)
cli.add_command(mirror_cmds.mirror)
cli.add_command(apply_cmds.apply)
cli.add_command(apply_cmds.runs)
cli.add_command(apply_cmds.up)
cli.add_command(audit_cmds.audit)
cli.add_command(status_cmds.status)
cli.add_command(check_cmds.check)
cli.add_command(deploy_cmds.deploy)
cli.add_command(deploy_cmds.rollback)
cli.add_command(deploy_cmds.releases)
cli.add_command(jobs_cmds.jobs)
cli.add_command(backup_cmds.backup)
cli.add_command(db_cmds.db)
cli.add_command(harden_cmds.harden)


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="opsctl", standalone_mode=False)
    except OpsctlError as exc:
        for line in exc.lines():
            click.echo(f"opsctl: {line}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("opsctl: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
