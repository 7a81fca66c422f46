"""A forward proxy and a package index that both want credentials, on the Docker bridge.

The proxy (HTTP, CONNECT for HTTPS) wants Proxy-Authorization: Basic; the index (HTTPS, its own
test CA) wants Authorization: Basic and serves PyPI's simple pages, whose files the client then
fetches from PyPI's file host through the proxy. Both count what they served and refused.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import select
import socket
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Counts:
    def __init__(self):
        self.served, self.refused = 0, 0


def _serve(server) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def start_proxy(address: str, user: str, password: str) -> tuple[object, int, Counts]:
    counts = Counts()
    wanted = _basic(user, password)

    class Proxy(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _authorised(self) -> bool:
            if self.headers.get("Proxy-Authorization") == wanted:
                counts.served += 1
                return True
            counts.refused += 1
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="dlws-test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def do_CONNECT(self):
            if not self._authorised():
                return
            host, _, port = self.path.rpartition(":")
            try:
                upstream = socket.create_connection((host, int(port)), timeout=30)
            except OSError:
                self.send_error(502)
                return
            self.send_response(200, "Connection established")
            self.end_headers()
            sockets = [self.connection, upstream]
            try:
                while True:
                    ready, _, _ = select.select(sockets, [], [], 60)
                    if not ready:
                        break
                    for sock in ready:
                        data = sock.recv(65536)
                        if not data:
                            return
                        (upstream if sock is self.connection else self.connection).sendall(data)
            finally:
                upstream.close()

        def do_GET(self):
            if not self._authorised():
                return
            url = urllib.request.urlparse(self.path)
            connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("proxy-authorization", "proxy-connection")}
            connection.request("GET", url.path + (f"?{url.query}" if url.query else ""),
                               headers=headers)
            response = connection.getresponse()
            body = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer((address, 0), Proxy)
    _serve(server)
    return server, server.server_address[1], counts


def make_tls(folder: Path, address: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for `address` (an IP) signed by it: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr",
                                                       "srv.pem"))
    ext = folder / "ext.cnf"
    ext.write_text(f"subjectAltName=IP:{address}\nbasicConstraints=CA:FALSE\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=dlws test index CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj",
        f"/CN={address}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def start_index(address: str, user: str, password: str, cert: Path, key: Path,
                upstream: str = "https://pypi.org/simple/") -> tuple[object, int, Counts]:
    counts = Counts()
    wanted = _basic(user, password)

    class Index(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.headers.get("Authorization") != wanted:
                counts.refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="dlws-test-index"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            name = self.path.split("/simple/", 1)[-1].strip("/")
            request = urllib.request.Request(upstream + (f"{name}/" if name else ""),
                                             headers={"Accept": "text/html"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    body = response.read()
            except OSError:
                self.send_error(404)
                return
            counts.served += 1
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer((address, 0), Index)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _serve(server)
    return server, server.server_address[1], counts
