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


def test_generated_cli_doc_is_current():
    from opsctl.cli.docs import DOC, cli_markdown

    assert DOC.read_text(encoding="utf-8") == cli_markdown(), (
        "docs/cli.md is stale: run `python -m opsctl.cli.docs > docs/cli.md`")


def test_cli_doc_covers_every_command_and_subcommand():
    from opsctl.cli.docs import cli_markdown

    ctx = click.Context(cli)
    expected = {"opsctl"}

    def add(path: str, command: click.Command) -> None:
        expected.add(path)
        if isinstance(command, click.Group):
            for sub, child in command.commands.items():
                add(f"{path} {sub}", child)

    for name in COMMANDS:
        add(f"opsctl {name}", cli.get_command(ctx, name))
    documented = {line[3:] for line in cli_markdown().splitlines() if line.startswith("## ")}
    assert documented == expected


def test_readme_command_list_names_every_command_and_subcommand():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Commands\n", 1)[1].split("\n## ", 1)[0]
    listed = [line for line in section.splitlines() if line.startswith("opsctl ")]
    ctx = click.Context(cli)
    missing = []
    for name in COMMANDS:
        lines = [line for line in listed if line.split()[1] == name]
        command = cli.get_command(ctx, name)
        subs = command.commands if isinstance(command, click.Group) else {}
        missing += [name] if not lines else [
            f"{name} {sub}" for sub in subs
            if not any(re.search(rf"\b{sub}\b", line) for line in lines)]
    assert not missing, f"README.md's Commands section lacks: {', '.join(missing)}"
