"""Storage backup: pgBackRest on the site's backup host, driven over SSH.

`info` and `policy` read and judge pgBackRest's repository (pure), `drill` restores into a
scratch cluster and compares, `ops` ties them to a site through `opsctl.transport`.
"""
