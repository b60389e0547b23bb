"""AIDE file integrity on a site's hosts: what the daily checks found, and accepting a
reviewed change as the new baseline.

`report` reads each host's last daily check (its log, through the site's transport) and judges
it with a pure function; `accept` runs `aide --update` on a reviewed host, installs the new
baseline, checks again and writes the audit record. AIDE's report is parsed in one place,
monitor/aide_status.py, which the hosts' status timer runs too.
"""
