"""A package index on a local port (PEP 503 simple pages over HTTP) that the
test can break the way a network breaks: ``refuse()`` (nothing listens: the
port answers RST, as a stopped index does), ``hang()`` (connections are
accepted and never answered, as a dead proxy or a black-holed route after
the handshake), ``forget()`` (the index answers, but without the package:
a requirement that can no longer be satisfied). Serves the wheels of a
directory; no dependencies beyond the standard library."""

import hashlib
import http.server
import os
import re
import socket
import threading


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class LocalIndex:
    def __init__(self, wheel_dir: str):
        self.wheel_dir = wheel_dir
        self.mode = "ok"
        self.hung: list = []
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                index._serve(self)

            def do_HEAD(self):
                index._serve(self, head=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _wheels(self) -> dict:
        out: dict = {}
        for n in sorted(os.listdir(self.wheel_dir)):
            if n.endswith(".whl"):
                out.setdefault(_normalize(n.split("-", 1)[0]), []).append(n)
        return out

    def _serve(self, h, head: bool = False) -> None:
        if self.mode == "hang":
            self.hung.append(h.connection)      # kept open, never answered
            threading.Event().wait()
        wheels = {} if self.mode == "forget" else self._wheels()
        parts = [p for p in h.path.split("?", 1)[0].split("/") if p]
        body, status, ctype = b"", 404, "text/html"
        if parts[:1] == ["simple"] and len(parts) == 1:
            body = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in wheels).encode()
            status = 200
        elif parts[:1] == ["simple"] and len(parts) == 2:
            files = wheels.get(_normalize(parts[1]))
            if files is not None:
                links = []
                for f in files:
                    with open(os.path.join(self.wheel_dir, f), "rb") as fh:
                        digest = hashlib.sha256(fh.read()).hexdigest()
                    links.append(f'<a href="/files/{f}#sha256={digest}">{f}</a>\n')
                body, status = "".join(links).encode(), 200
        elif parts[:1] == ["files"] and len(parts) == 2 and "/" not in parts[1]:
            path = os.path.join(self.wheel_dir, parts[1])
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    body = fh.read()
                status, ctype = 200, "application/octet-stream"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def refuse(self) -> None:
        """Stop listening, keeping the port: a connection is refused (RST)
        and no other process can take the port meanwhile."""
        self.server.shutdown()
        self.server.socket.close()
        self._placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._placeholder.bind(("127.0.0.1", self.port))     # bound, not listening

    def hang(self) -> None:
        self.mode = "hang"

    def forget(self) -> None:
        self.mode = "forget"

    def close(self) -> None:
        try:
            self.server.shutdown()
            self.server.socket.close()
        except OSError:
            pass
        for c in self.hung:
            try:
                c.close()
            except OSError:
                pass
        ph = getattr(self, "_placeholder", None)
        if ph is not None:
            ph.close()
