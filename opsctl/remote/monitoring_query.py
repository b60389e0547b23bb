#!/usr/bin/env python3
"""Run on the monitoring host (`python3 - REQUEST`): Prometheus's instant queries and
Alertmanager's alerts from where they listen, one JSON answer on stdout.

REQUEST is JSON: {"prometheus": URL, "alertmanager": URL, "queries": {key: expr},
"timeout": seconds}. Stdlib only: the host has nothing else.
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def get(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def main():
    request = json.loads(sys.argv[1])
    timeout = request.get("timeout", 5)
    out = {"answers": {}, "alerts": [], "error": None}
    url = request["prometheus"]
    try:
        for key, expr in request["queries"].items():
            url = request["prometheus"] + "/api/v1/query?" + urllib.parse.urlencode(
                {"query": expr})
            out["answers"][key] = get(url, timeout).get("data", {}).get("result", [])
        url = request["alertmanager"] + ("/api/v2/alerts?active=true&silenced=false"
                                         "&inhibited=false")
        out["alerts"] = get(url, timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        out["error"] = f"{url.split('?')[0]}: {getattr(exc, 'reason', exc)}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
