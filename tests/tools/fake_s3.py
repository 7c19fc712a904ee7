#!/usr/bin/env python3
"""A scripted HTTP server that plays the failures of an S3 endpoint, for retry and parsing
tests that a real server cannot stage on demand. Path-style requests; the bucket picks the
behaviour:

  /flaky/N-name   the first N requests for this key get 503 SlowDown, later ones 200 with the
                  body "payload:N-name" (GET) or its Content-Length (HEAD)
  /broken/...     always 500 InternalError
  /denied/...     always 403 AccessDenied
  /slow/...       sends nothing for 10 s (idle timeouts)
  /trickle/...    200 with a 50-byte body sent one byte every 200 ms: bytes keep moving, so
                  only a total limit on the request ends it early
  /echo/...       200 with the request's method, path, query and headers as JSON
  /paged?list-type=2[&continuation-token=T]
                  ListObjectsV2 in two pages; keys need XML entity decoding, and the
                  continuation token needs URI encoding to come back intact

Prints {"endpoint": "http://127.0.0.1:PORT", ...} once listening; exits when stdin reaches EOF.
"""

import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "page/2+=&"  # needs %2F %2B %3D %26 in a query string
PAGES = {
    "": (["a&b.txt", "c<d>.txt"], TOKEN),
    TOKEN: (["e\"f'.txt", "\u00e9t\u00e9.txt"], None),
}


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def error_xml(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fake</RequestId></Error>").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counts = {}
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type="application/xml", length=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.lstrip("/").split("/", 1)
        bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
        if bucket == "flaky":
            with Handler.lock:
                seen = Handler.counts.get(key, 0)
                Handler.counts[key] = seen + 1
            if seen < int(key.split("-", 1)[0]):
                return self.reply(503, error_xml("SlowDown", "Please reduce your request rate."))
            body = f"payload:{key}".encode()
            return self.reply(200, body, "application/octet-stream")
        if bucket == "broken":
            return self.reply(500, error_xml("InternalError", "We encountered an internal error."))
        if bucket == "denied":
            return self.reply(403, error_xml("AccessDenied", "Access Denied"))
        if bucket == "slow":
            time.sleep(10)
            return self.reply(200, b"late")
        if bucket == "trickle":
            body = b"t" * 50
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                try:
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return None
                time.sleep(0.2)
            return None
        if bucket == "echo":
            body = json.dumps({"method": self.command, "path": url.path, "query": url.query,
                               "headers": {k.lower(): v for k, v in self.headers.items()}})
            return self.reply(200, body.encode(), "application/json")
        if bucket == "paged":
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            token = query.get("continuation-token", [""])[0]
            if query.get("list-type") != ["2"] or token not in PAGES:
                return self.reply(400, error_xml("InvalidArgument", f"bad token {token!r}"))
            keys, next_token = PAGES[token]
            xml = '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="x"><Name>paged</Name>'
            xml += f"<IsTruncated>{'true' if next_token else 'false'}</IsTruncated>"
            if next_token:
                xml += f"<NextContinuationToken>{xml_escape(next_token)}</NextContinuationToken>"
            for k in keys:
                xml += f"<Contents><Key>{xml_escape(k)}</Key><Size>1</Size></Contents>"
            xml += "</ListBucketResult>"
            return self.reply(200, xml.encode())
        return self.reply(404, error_xml("NoSuchBucket", f"no bucket {bucket}"))

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    # Credentials to sign with; this server does not check signatures, only echoes them.
    print(json.dumps({"endpoint": f"http://{host}:{port}", "access_key_id": "AKIDFAKE",
                      "secret_access_key": "fake-secret"}), flush=True)
    sys.stdin.read()  # returns at EOF
    os._exit(0)  # without waiting for handlers still sleeping in /slow


if __name__ == "__main__":
    main()
