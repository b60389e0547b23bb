"""Collectors: each reads one part of the host and yields metric families at scrape time."""
