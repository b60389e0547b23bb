"""`opsctl check --local` and `opsctl check catalog`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from opsctl import audit
from opsctl.check.diff import diff_scans, load_scan
from opsctl.check.fleet import scan_named_site
from opsctl.check.record import EVIDENCE_FILE, bundle_digest
from opsctl.check.render import (
    RENDERERS,
    catalog_rows,
    check_out_dir,
    parse_formats,
    write_reports,
)
from opsctl.check.scan import catalog as load_checks
from opsctl.check.scan import scan_local, unit_spec
from opsctl.cli.options import OUTPUT_OPTION, VIA_OPTION, limit_option
from opsctl.cli.render import console, emit_json

LEVEL = click.option("--level", type=click.IntRange(2, 3), default=3, show_default=True,
                     help="Protection level whose checks apply.")


@click.group(invoke_without_command=True)
@click.option("--local", "local", is_flag=True, help="Scan the machine this runs on (no SSH).")
@click.option("--site", "site_name", metavar="NAME",
              help="Scan every host of a site over SSH, and its network; with --local, apply "
              "that site's documented exceptions (security/exceptions.yml) to this machine.")
@limit_option("With --site: only these hosts (repeat or comma-separate).", "HOST")
@click.option("--probes/--no-probes", "probe", default=None,
              help="With --site (default: probes): probe the flow matrix from the site's hosts "
              "for the checks of the enforced boundary; without, those checks are errors.")
@VIA_OPTION
@LEVEL
@click.option("--format", "fmt", default="table", show_default=True, metavar="FORMAT[,FORMAT]",
              help=f"One or more of {', '.join(sorted(RENDERERS))}; several need --out.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write each format to its own file in this directory.")
@click.option("--fail-on", type=click.Choice(["any", "low", "medium", "high"]), default="any",
              show_default=True, help="Exit 1 when a check at or above this severity fails.")
@click.pass_context
def check(ctx: click.Context, local: bool, site_name: str | None, limit: tuple[str, ...],
          probe: bool | None, via: str | None, level: int, fmt: str, out_dir: Path | None,
          fail_on: str) -> int | None:
    """Graded-protection (等级保护 level 3) compliance scan against the check catalog."""
    if ctx.invoked_subcommand is not None:
        return None
    if not local and not site_name:
        raise click.UsageError("say what to scan: --local or --site NAME")
    if (limit or probe is not None) and (local or not site_name):
        raise click.UsageError("--limit and --probes/--no-probes go with --site, not --local")
    formats = parse_formats(fmt)
    if len(formats) > 1 and out_dir is None:
        raise click.UsageError("several formats go to files: add --out DIR")
    if out_dir is not None:
        check_out_dir(out_dir)
    if local:
        scan = scan_local(level, site_name) if site_name else scan_local(level)
    else:
        hosts = list(limit) or None
        scan = scan_named_site(site_name, level, hosts, probe is not False, via=via)
    if out_dir is None:
        RENDERERS[formats[0]]().write(scan, console)
    else:
        written = write_reports(scan, formats, out_dir)
        for path in written:
            click.echo(f"wrote {path}")
        digest = bundle_digest(written)
        if digest:  # the record an assessor files: its evidence, fixed in the audit chain
            audit.append("check.record", {"evidence": str(out_dir / EVIDENCE_FILE),
                                          "sha256": digest, "started": scan.document["started"]},
                         "written")
    return 1 if scan.failures(fail_on) else 0


@check.command("catalog")
@LEVEL
@OUTPUT_OPTION
def catalog_cmd(level: int, output: str) -> None:
    """List every check with its clause, test unit, level, severity and remediation."""
    rows = catalog_rows(load_checks(level))
    if output == "json":
        emit_json(rows)
        return
    table = Table(title=f"{len(rows)} checks at level {level}", title_justify="left")
    table.add_column("id", no_wrap=True)
    for col in ("clause", "unit", "levels", "severity", "remediation"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["clause"], r["unit"], ",".join(map(str, r["levels"])),
                      r["severity"] + (" ⚠" if r["major_risk"] else ""), r["remediation"])
    console.print(table)


@check.command("units")
@click.option("--level", type=int, default=3, show_default=True,
              help="Protection level; GB/T 28448-2019 units are specified for level 3.")
@OUTPUT_OPTION
def units_cmd(level: int, output: str) -> None:
    """List every GB/T 28448-2019 test unit with its steps: per step, the checks that evidence
    it or the evidence an assessor collects by hand."""
    units = unit_spec(level)
    if output == "json":
        emit_json(units)
        return
    table = Table(title=f"{len(units)} test units at level {level}", title_justify="left",
                  show_lines=True)
    for col in ("unit", "clause", "title", "steps"):
        table.add_column(col, overflow="fold", no_wrap=col == "unit")
    for u in units:
        table.add_row(u["id"], u["clause"], u["title_zh"], "\n".join(
            f"{i}. [{s['object']}] {s['examine']}: " + "; ".join(_evidence(s))
            for i, s in enumerate(u["steps"], start=1)))
    console.print(table)


def _evidence(step: dict) -> list[str]:
    shown = [", ".join(step["checks"])] if step["checks"] else []
    return shown + ([f"manual 人工核查: {step['manual']}"] if step["manual"] else [])


@check.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@OUTPUT_OPTION
def diff_cmd(old: Path, new: Path, output: str) -> None:
    """What changed between two scans (`--format json` documents); exit 1 on a regression."""
    result = diff_scans(load_scan(old), load_scan(new))
    if output == "json":
        emit_json(result.as_dict())
    else:
        table = Table(title=f"{old} → {new}", title_justify="left")
        for col in ("target", "check", "was", "now", "change", "reason"):
            table.add_column(col, overflow="fold", no_wrap=col == "check")
        style = {"fixed": "green", "regressed": "red"}
        for c in result.changes:
            table.add_row(c.target, c.check, c.old or "—", c.new or "—",
                          f"[{style.get(c.kind, 'dim')}]{c.kind}[/]", c.reason)
        console.print(table)
        summary = result.as_dict()["summary"]
        console.print(", ".join(f"{n} {k}" for k, n in summary.items()))
    if result.regressions:
        sys.exit(1)
