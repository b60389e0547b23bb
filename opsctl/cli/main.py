"""Entry point: the command groups, and the one place errors become messages and exit codes."""

from __future__ import annotations

import importlib
import sys

import click

from opsctl import __version__
from opsctl.errors import OpsctlError

# Each command's module is imported only when that command runs (or --help lists them all):
# importing every command's library up front cost `opsctl check` 0.3 s of its start-up.
COMMANDS = {
    "site": "site:site", "lab": "lab:lab", "mirror": "mirror:mirror",
    "apply": "apply:apply", "runs": "apply:runs", "up": "apply:up", "audit": "audit:audit",
    "status": "status:status", "check": "check:check", "deploy": "deploy:deploy",
    "rollback": "deploy:rollback", "releases": "deploy:releases", "jobs": "jobs:jobs",
    "backup": "backup:backup", "db": "db:db", "harden": "harden:harden",
    "state": "state:state", "pki": "pki:pki", "patch": "patch:patch", "aide": "aide:aide",
    "host": "host:host",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(f"opsctl.cli.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opsctl")
def cli() -> None:
    """Provision, deploy, watch and prove the 农地云 node."""


def _ask_password(question: str) -> str:
    return click.prompt(question, hide_input=True, err=True)


# A group named without its subcommand shows its help (click >= 8.2 raises this for it).
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_line(exc: click.ClickException) -> str:
    """click's refusal of an argument as one line, like every other refusal: what is wrong,
    then where the command's help is (click itself prints its usage and a hint around it)."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    return f"{message.rstrip('.')} (see `{ctx.command_path} --help`)"


def main(argv: list[str] | None = None) -> None:
    from opsctl import connection  # noqa: PLC0415 - not at import: keeps `opsctl --help` light

    # A site whose sudo password is `prompt` asks here, once per run, never on argv.
    connection.set_prompt(_ask_password)
    try:
        code = cli.main(args=argv, prog_name="opsctl", standalone_mode=False)
    except OpsctlError as exc:
        for line in exc.lines():
            click.echo(f"opsctl: {line}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("opsctl: aborted", err=True)
        sys.exit(130)
    except _NO_ARGS_IS_HELP as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"opsctl: {_usage_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
