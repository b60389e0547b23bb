"""`opsctl status`: one view of the site from its Prometheus and Alertmanager.

`view` is pure: API answers in, a SiteStatus out, tested with recorded answers and no hosts.
`fetch` is the edge: one call through the site's transport runs the queries on the
monitoring host itself.
"""
