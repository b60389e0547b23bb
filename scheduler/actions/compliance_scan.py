"""compliance-scan: the graded-protection scan of this host, for the monitoring agent.

Runs the same collector and catalog as `opsctl check` (the `security` package, installed
beside the scheduler with the pydantic it needs under vendor/), with what the site says about
this host (zone, groups, whitelisted ports: `--context`, written by the scheduler_agent role),
and writes the outcome where the monitoring agent reads it (`--out`): counts by result, the
ids of failing checks, the time. A full report with evidence is `opsctl check --site`'s job.

Exit 0 when the scan ran (whatever it found: failures are the monitor's to alert on), 1 when
it could not (catalog or collector broken), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# A job with a `user` starts with a clean environment: find the installation from this file
# (HOME/scheduler/actions/compliance_scan.py), its vendored libraries first.
HOME = Path(__file__).resolve().parents[2]
for path in (HOME, HOME / "vendor"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compliance_scan.py", description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, choices=(2, 3), default=3)
    parser.add_argument("--context", type=Path, help="JSON: what the site says about this host")
    parser.add_argument("--out", type=Path, required=True, help="summary file for the monitor")
    args = parser.parse_args(argv)

    try:
        context = json.loads(args.context.read_text()) if args.context else None
    except (OSError, ValueError) as exc:
        print(f"compliance-scan: {args.context}: {exc}", file=sys.stderr)
        return 2
    try:
        from security.local import (  # noqa: PLC0415
            monitor_summary,
            scan_this_host_with_facts,
            write_atomically,
        )
        from security.schema import CatalogError, load_catalog  # noqa: PLC0415
    except ImportError as exc:
        print(f"compliance-scan: the scanner is not installed in {HOME}: {exc}", file=sys.stderr)
        return 1
    try:
        checks = load_catalog(level=args.level)  # the evaluator keeps the host's own
    except CatalogError as exc:
        print(f"compliance-scan: the catalog is invalid: {exc.problems[0]}", file=sys.stderr)
        return 1
    name = (context or {}).get("host")
    target, facts = scan_this_host_with_facts(checks, context, name=name)
    summary = monitor_summary(target, args.level, time.time(), facts)
    write_atomically(args.out, json.dumps(summary, ensure_ascii=False) + "\n")
    print(json.dumps({k: summary[k] for k in ("host", "counts", "error", "failed")},
                     ensure_ascii=False))
    return 1 if target.error else 0


if __name__ == "__main__":
    sys.exit(main())
