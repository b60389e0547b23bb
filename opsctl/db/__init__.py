"""The database cluster under Patroni: status, switchover, failover (`opsctl db`).

`cluster` reads Patroni's and PostgreSQL's answers into our own types and judges them
(pure); `ops` gathers them from the hosts over the site's SSH transport and acts.
"""
