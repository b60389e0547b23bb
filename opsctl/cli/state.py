"""`opsctl state backup|verify|restore`: the control node's own state, kept off the machine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from opsctl.cli.options import OUTPUT_OPTION
from opsctl.cli.render import emit_json
from opsctl.errors import InvalidInput, Problem
from opsctl.state import backup as state_backup

FILE = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
PASSPHRASE_FILE = click.option(
    "--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
    help="Read the passphrase from this file (first line) instead of asking for it.")


def _passphrase(path: Path | None, confirm: bool) -> str:
    if path is None:
        return click.prompt("passphrase", hide_input=True, confirmation_prompt=confirm,
                            err=True)
    try:
        return path.read_text().splitlines()[0] if path.stat().st_size else ""
    except OSError as exc:
        raise InvalidInput([Problem(str(path), "", exc.strerror or str(exc))]) from None


def _show(summary: state_backup.Summary, verb: str, output: str) -> None:
    if output == "json":
        emit_json(dataclasses.asdict(summary))
        return
    click.echo(f"{verb} {summary.path}: {summary.files} files of sites "
               f"{', '.join(summary.sites) or '-'}, audit log {summary.audit_records} records "
               f"(head {(summary.audit_head or '-')[:12]}), made {summary.created} on "
               f"{summary.host}")
    if summary.sha256:
        click.echo(f"sha256 {summary.sha256}")
    if summary.replaced:
        click.echo(f"the state it replaced is in {summary.replaced}")
    for note in summary.notes:
        click.echo(f"note: {note}")


@click.group()
def state() -> None:
    """The control node's state (CA keys, secrets, pinned host keys, audit log): back it up,
    check a backup, restore it on a new control node."""


@state.command("backup")
@FILE
@PASSPHRASE_FILE
@OUTPUT_OPTION
def backup_cmd(file: Path, passphrase_file: Path | None, output: str) -> None:
    """Write the state, encrypted with a passphrase, to FILE (a new file, mode 0600)."""
    passphrase = _passphrase(passphrase_file, confirm=True)
    _show(state_backup.backup(file, passphrase), "wrote", output)


@state.command("verify")
@FILE
@PASSPHRASE_FILE
@OUTPUT_OPTION
def verify_cmd(file: Path, passphrase_file: Path | None, output: str) -> None:
    """Decrypt FILE and check every member and the audit log's chain; change nothing."""
    _show(state_backup.verify(file, _passphrase(passphrase_file, confirm=False)), "verified",
          output)


@state.command("restore")
@FILE
@PASSPHRASE_FILE
@click.option("--force", is_flag=True, help="Move the state already here aside "
              "(replaced-TIME/) instead of refusing.")
@OUTPUT_OPTION
def restore_cmd(file: Path, passphrase_file: Path | None, force: bool, output: str) -> None:
    """Put FILE's state in place on this control node (after checking it whole)."""
    summary = state_backup.restore(file, _passphrase(passphrase_file, confirm=False), force)
    _show(summary, "restored", output)
