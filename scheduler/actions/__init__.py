"""Built-in actions of the scheduler (spec.ACTIONS): each a module run as `python3 -m
scheduler.actions.NAME`, standard library only plus what its host has (psycopg2 on database
hosts)."""
