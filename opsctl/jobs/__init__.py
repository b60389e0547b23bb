"""Scheduled jobs from the control node: `catalog` lists them from the site (pure), `fleet`
runs them and reads their history on the hosts (one SSH command per host, through the
scheduler's own CLI: `python3 -m scheduler run NAME` and `history [NAME] --json`,
scheduler/__main__.py)."""
