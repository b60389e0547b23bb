"""Run on a host (python3 -, as root): the certificate files it holds and the certificate
each of its TLS services presents. Standard library only; prints one JSON document.

argv[1] is a JSON request: {"files": [path, ...], "endpoints": [{"address", "port",
"starttls"}, ...], "client_cert", "client_key", "timeout"}. The answer: {"files": {path:
{"pem": text} | {"error": why}}, "endpoints": [{"address", "port", "der": base64} |
{..., "error": why}]}. Services that want a client certificate (etcd, the log receiver) get
the host's own. Nothing is verified here: the control node compares what it gets with what
it issued.
"""

import base64
import contextlib
import json
import socket
import ssl
import struct
import sys

SSL_REQUEST = struct.pack("!II", 8, 80877103)  # PostgreSQL's SSLRequest message


def read_file(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return {"pem": handle.read()}
    except OSError as exc:
        return {"error": exc.strerror or str(exc)}


def presented(endpoint, request):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # no client certificate: a service that wants one will say so
    with contextlib.suppress(OSError, ssl.SSLError):
        context.load_cert_chain(request["client_cert"], request["client_key"])
    timeout = request.get("timeout", 5)
    out = {"address": endpoint["address"], "port": endpoint["port"]}
    try:
        with socket.create_connection((endpoint["address"], endpoint["port"]),
                                      timeout=timeout) as raw:
            if endpoint.get("starttls") == "postgres":
                raw.sendall(SSL_REQUEST)
                if raw.recv(1) != b"S":
                    out["error"] = "the server refused TLS"
                    return out
            with context.wrap_socket(raw, server_hostname=endpoint.get("name")) as tls:
                der = tls.getpeercert(binary_form=True)
                out["der"] = base64.b64encode(der).decode() if der else None
    except (OSError, ssl.SSLError) as exc:
        out["error"] = str(exc) or type(exc).__name__
    return out


def main():
    request = json.loads(sys.argv[1])
    answer = {"files": {path: read_file(path) for path in request.get("files", [])},
              "endpoints": [presented(e, request) for e in request.get("endpoints", [])]}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
