#!/usr/bin/env python3
"""The tests' Git host, on one loopback port:

- /git/<name>.git/...: Debian's `git http-backend` (Git's own smart-HTTP protocol, push and
  fetch) behind HTTP basic authentication with the token given. A repository that does not
  exist yet is made on first use, as GitLab's and Gitea's push-to-create do.
- /github/... and /gitlab/...: GitHub's and GitLab's repository REST calls, answered as
  recorded in recorded.json (requests checked for the recorded headers and body fields, answers
  as those hosts document them). A stand-in: it cannot check permissions, rate limits or any
  call not recorded; an unrecorded request is answered 501 and listed at /control/unmatched.
- /control/...: the test's hand on the server: `POST /control/lose-next/<what>` (`push` or
  `create`) carries out the next such request, then closes the connection without answering
  (the answer lost, as when the client crashes mid-request); `GET /control/stats`.
"""

import argparse
import base64
import json
import os
import re
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LOCK = threading.Lock()
STATE = {"lose": set(), "pushes": 0, "creates": 0, "unmatched": [], "present": {}}


class Handler(BaseHTTPRequestHandler):
    server_version = "slipway-test-git/1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, body=b"", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = list(headers) + [("Content-Type", "application/json")]
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def lost(self, what):
        """True (and the connection dropped unanswered) when the test asked to lose this one."""
        with LOCK:
            if what not in STATE["lose"]:
                return False
            STATE["lose"].discard(what)
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)
        return True

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        path = urlsplit(self.path).path
        if path.startswith("/control/"):
            return self.control(method, path[len("/control/"):])
        if path.startswith("/git/"):
            return self.git(method)
        host = path.split("/")[1]
        if host in RECORDED:
            return self.replay(method, host, path[len(host) + 1:])
        self.answer(404, b"not here")

    def control(self, method, what):
        if method == "POST" and what.startswith("lose-next/"):
            with LOCK:
                STATE["lose"].add(what.split("/", 1)[1])
            return self.answer(204)
        if what == "stats":
            with LOCK:
                stats = {k: STATE[k] for k in ("pushes", "creates", "unmatched")}
            return self.answer(200, stats)
        self.answer(404, b"no such control")

    def authorised(self):
        given = self.headers.get("Authorization", "")
        if given.startswith("Basic "):
            user, _, password = base64.b64decode(given[6:]).decode().partition(":")
            return password == ARGS.token
        return False

    def git(self, method):
        if not self.authorised():
            return self.answer(401, b"", [("WWW-Authenticate", 'Basic realm="slipway-tests"')])
        url = urlsplit(self.path)
        repo = url.path[len("/git/"):].split(".git/")[0]
        if not re.fullmatch(r"[A-Za-z0-9._-]+", repo):
            return self.answer(404, b"no such repository")
        bare = os.path.join(ARGS.root, repo + ".git")
        if not os.path.exists(bare):
            subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch", "main", bare], check=True)
        body = self.body()
        pushing = url.path.endswith("/git-receive-pack")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": ARGS.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": url.path[len("/git"):],
            "QUERY_STRING": url.query,
            "REQUEST_METHOD": method,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "slipway",
            "REMOTE_ADDR": self.client_address[0],
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": ARGS.root,
        }
        for header, name in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "GIT_PROTOCOL")):
            if self.headers.get(header):
                env[name] = self.headers[header]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        if pushing:
            with LOCK:
                STATE["pushes"] += 1
            if self.lost("push"):
                return
        head, _, rest = out.partition(b"\r\n\r\n")
        if not rest and b"\n\n" in out:
            head, _, rest = out.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode().splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.answer(status, rest, headers)

    def replay(self, method, host, path):
        recorded = RECORDED[host]
        for header, value in recorded["headers"].items():
            if self.headers.get(header) != value.replace("{token}", ARGS.token):
                return self.answer(401, {"message": f"Bad credentials: {header} is not as recorded"})
        raw = self.body()
        request = json.loads(raw) if raw else {}
        for exchange in recorded["exchanges"]:
            names = re.findall(r"\{(\w+)\}", exchange["path"])
            pattern = re.escape(exchange["path"])
            for name in names:
                pattern = pattern.replace(re.escape("{" + name + "}"), "(?P<%s>[^/]+)" % name)
            found = re.fullmatch(pattern, path)
            if exchange["method"] != method or not found:
                continue
            values = {k: unquote(v) for k, v in found.groupdict().items()}
            values.update({k: v for k, v in request.items() if isinstance(v, str)})
            values["git"] = f"http://127.0.0.1:{ARGS.port}/git"
            full = values.get("full_path") or "{}/{}".format(values.get("owner", ""), values.get("name", ""))
            values.setdefault("full_path", full)
            values.setdefault("name", full.rsplit("/", 1)[-1])
            with LOCK:
                present = STATE["present"].get((host, values["name"]), False)
            if exchange.get("when") not in (None, "present" if present else "absent"):
                continue
            wanted = fill(exchange.get("request", {}), values)
            if any(request.get(k) != v for k, v in wanted.items()):
                continue
            if exchange.get("creates"):
                with LOCK:
                    STATE["present"][(host, values["name"])] = True
                    STATE["creates"] += 1
                if self.lost("create"):
                    return
            return self.answer(exchange["status"], fill(exchange["response"], values))
        with LOCK:
            STATE["unmatched"].append(f"{host}: {method} {path} {request}")
        self.answer(501, {"message": f"no recorded exchange for {method} {path}"})


def fill(template, values):
    """The recorded value with {placeholders} replaced (numbers kept as numbers)."""
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), template)
    return template


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--token", required=True)
    ARGS = parser.parse_args()
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "recorded.json")) as f:
        RECORDED = json.load(f)
    ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler).serve_forever()
