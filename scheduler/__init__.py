"""scheduler: the job scheduling agent (Python 3.11 stdlib only; psycopg2 or psql optional).

cron (expressions, next fire time), spec (jobs as data), engine (pure decisions with an
injected clock), runner (process groups, timeouts, retries), history (SQLite), lock (the
cluster-wide PostgreSQL advisory lock), metrics (what the monitor agent exposes), agent (the
loop). It runs on every host and never imports opsctl.
"""

__version__ = "0.1.0"
