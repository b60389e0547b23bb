"""The command table: every command resolves, and none is imported before it runs."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from opsctl.cli.main import COMMANDS, cli


def test_every_command_resolves_to_itself():
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name


def test_help_lists_every_command():
    out = CliRunner().invoke(cli, ["--help"]).output
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)


def test_no_command_library_is_imported_before_its_command_runs():
    probe = ("import sys, opsctl.cli.main; "
             "print(sorted(m for m in sys.modules if m.startswith(('opsctl.apply', "
             "'opsctl.deploy', 'opsctl.check', 'security', 'opsctl.lab'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
