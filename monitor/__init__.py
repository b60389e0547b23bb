"""monitor: the host monitoring agent (psutil + prometheus-client, nothing else at runtime).

It runs on every managed host (and, with `python -m monitor`, anywhere), exposes host and
platform metrics in the Prometheus text format, and never imports opsctl.
"""

__version__ = "0.1.0"
