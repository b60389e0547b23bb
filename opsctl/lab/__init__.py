"""The local lab: the site's hosts as systemd-nspawn containers in network namespaces."""
