"""Admission of calls on the daemons' gRPC ports, with real processes (issue 13, item 2): tokens
are checked at a call's headers, before gRPC reads its message; log lines a peer can trigger
(protobuf parse errors, failed TLS handshakes) are rate-limited; the stream and memory limits
are flags the server announces."""

import json
import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import cluster  # noqa: E402
from test_cluster import ClusterTest, make_certs  # noqa: E402

import grpc  # noqa: E402

GET = "/caliber.v1.QuantService/GetQuantJob"
MIB = 1 << 20
# GetQuantJobRequest{job_id: <2 bytes of invalid UTF-8>}: libprotobuf refuses to parse it and
# logs a ~227-byte line about it.
INVALID_UTF8_GET = b"\x0a\x02\xff\xfe"


def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def length_delimited(field, data):
    """A protobuf length-delimited field (wire type 2) holding `data`."""
    return varint(field << 3 | 2) + varint(len(data)) + data


def raw_get(channel):
    """GetQuantJob taking and returning serialized bytes (no client-side checks)."""
    return channel.unary_unary(GET, request_serializer=None, response_deserializer=None)


def log_size(c):
    return os.path.getsize(os.path.join(c.workdir, "coordinator.log"))


class RssSampler:
    """Peak VmRSS (KiB) of a process, sampled every 10 ms on a thread."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = cluster.proc_status(pid)["VmRSS"]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(0.01):
            self.peak = max(self.peak, cluster.proc_status(self.pid)["VmRSS"])

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peak


def h2_server_settings(port):
    """The SETTINGS the server sends first on a plaintext HTTP/2 connection, as {id: value}."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + bytes([4, 0]) + struct.pack(">I", 0))
        buf = b""
        while True:
            while len(buf) < 9:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed before SETTINGS")
                buf += chunk
            length = int.from_bytes(buf[0:3], "big")
            ftype, flags = buf[3], buf[4]
            while len(buf) < 9 + length:
                buf += s.recv(65536)
            payload, buf = buf[9:9 + length], buf[9 + length:]
            if ftype == 4 and not flags & 1:
                return {int.from_bytes(payload[i:i + 2], "big"): int.from_bytes(payload[i + 2:i + 6], "big")
                        for i in range(0, len(payload), 6)}


class Admission(ClusterTest):
    def start_with_tokens(self, extra=()):
        tokens = os.path.join(self.workdir, "tokens.json")
        cluster.write_secret(tokens, json.dumps({"tenants": [{"name": "a", "tokens": ["tok-a"]}]}))
        return self.start(workers=0, extra_coordinator=["--tokens-file", tokens] + list(extra))

    def test_unauthenticated_64mib_calls_are_refused_before_their_message_is_read(self):
        # The attack: 16 concurrent GetQuantJob calls, each a 64 MiB job_id, no token,
        # each on its own connection. Refused at the headers, a call costs the server at most its
        # HTTP/2 stream window (64 KiB), so 16 of them stay far below 100 MiB; read and parsed,
        # each would cost 64 MiB of buffer plus 64 MiB of string (over 1 GiB in all).
        c = self.start_with_tokens()
        pid = c.coordinator.pid
        payload = length_delimited(1, b"j" * (64 * MIB - 16))  # just under the old 64 MiB limit
        channels = [grpc.insecure_channel(c.address(), options=[("grpc.max_send_message_length", -1),
                                                                ("caliber.test_connection", i)])
                    for i in range(16)]
        for ch in channels:  # connected before measuring: the baseline includes 16 idle connections
            grpc.channel_ready_future(ch).result(timeout=30)
        time.sleep(0.5)
        before = cluster.proc_status(pid)["VmRSS"]
        sampler = RssSampler(pid)
        codes, details = [], []

        def call(ch):
            try:
                raw_get(ch)(payload, timeout=120)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
                details.append(e.details())

        threads = [threading.Thread(target=call, args=(ch,)) for ch in channels]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = sampler.stop()
        after = cluster.proc_status(pid)["VmRSS"]
        print(f"coordinator VmRSS before {before // 1024} MiB, peak {peak // 1024} MiB, after {after // 1024} MiB; "
              f"codes {sorted(set(str(x) for x in codes))}", file=sys.stderr)
        self.assertEqual(codes, [grpc.StatusCode.UNAUTHENTICATED] * 16, details[:2])
        self.assertLess(peak - before, 100 * 1024)
        for ch in channels:
            ch.close()
        # Still serving, and an authenticated call goes through.
        with self.assertRaises(grpc.RpcError) as e:
            raw_get(grpc.insecure_channel(c.address()))(b"\x0a\x03job", metadata=[("authorization", "Bearer tok-a")],
                                                       timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_authenticated_requests_over_their_method_limit_are_refused_precisely(self):
        # Per-method limits, checked before parsing: 4 KiB for Get/List/Cancel/Watch, 80 KiB
        # for Submit (the 64 KiB spec bound + 16 KiB). A field the method does not have (here
        # field 99, 32 MiB) counts too: it was never read before either, only kept in memory.
        c = self.start_with_tokens()
        ch = grpc.insecure_channel(c.address(), options=[("grpc.max_send_message_length", -1)])
        md = [("authorization", "Bearer tok-a")]
        unknown_field = length_delimited(99, b"u" * (32 * MIB))
        cases = [
            ("GetQuantJob", length_delimited(1, b"job-1") + unknown_field, 4096),
            ("GetQuantJob", length_delimited(1, b"j" * 5000), 4096),
            ("ListQuantJobs", length_delimited(2, b"t" * 5000), 4096),
            ("CancelQuantJob", length_delimited(1, b"j" * 5000), 4096),
            ("WatchQuantJob", length_delimited(1, b"j" * 5000), 4096),
            ("SubmitQuantJob", length_delimited(1, b"r" * (100 << 10)), 81920),
        ]
        for method, payload, limit in cases:
            with self.subTest(method, size=len(payload)):
                path = f"/caliber.v1.QuantService/{method}"
                with self.assertRaises(grpc.RpcError) as e:
                    if method == "WatchQuantJob":
                        list(ch.unary_stream(path, request_serializer=None, response_deserializer=None)(
                            payload, metadata=md, timeout=60))
                    else:
                        ch.unary_unary(path, request_serializer=None, response_deserializer=None)(
                            payload, metadata=md, timeout=60)
                self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, e.exception.details())
                self.assertEqual(e.exception.details(),
                                 f"{method} request is {len(payload)} bytes; at most {limit}")
        # Within the limits, the calls work as before.
        with self.assertRaises(grpc.RpcError) as e:
            raw_get(ch)(length_delimited(1, b"job-0000000000000000"), metadata=md, timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_unknown_methods_and_wrong_worker_tokens_are_refused_at_the_headers(self):
        token = os.path.join(self.workdir, "worker.token")
        cluster.write_secret(token, "s3cret\n")
        c = self.start_with_tokens(["--worker-token-file", token])
        ch = grpc.insecure_channel(c.address())
        cases = [("/caliber.v1.Nope/Get", [], grpc.StatusCode.UNIMPLEMENTED, "unknown service"),
                 ("/caliber.v1.CoordinatorService/Heartbeat", [("authorization", "Bearer tok-a")],
                  grpc.StatusCode.UNAUTHENTICATED, "worker token"),
                 (GET, [("authorization", "Bearer s3cret")], grpc.StatusCode.UNAUTHENTICATED, "")]
        for path, md, code, words in cases:
            with self.subTest(path):
                with self.assertRaises(grpc.RpcError) as e:
                    ch.unary_unary(path, request_serializer=None, response_deserializer=None)(
                        b"\x0a\x03abc", metadata=md, timeout=30)
                self.assertEqual(e.exception.code(), code, e.exception.details())
                self.assertIn(words, e.exception.details())
                self.assertNotIn("s3cret", e.exception.details())

    def test_invalid_utf8_requests_grow_the_log_by_a_bounded_amount(self):
        # 2,000 requests libprotobuf cannot parse, without a token and then with one. Without a
        # token nothing is parsed; with one, the parse error's line is printed 5 times per 30 s.
        c = self.start_with_tokens()
        ch = grpc.insecure_channel(c.address())
        get = raw_get(ch)
        start = log_size(c)
        for md in ([], [("authorization", "Bearer tok-a")]):
            codes = set()
            for _ in range(2000):
                try:
                    get(INVALID_UTF8_GET, metadata=md, timeout=30)
                    codes.add(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    codes.add(e.code())
            self.assertNotIn(grpc.StatusCode.OK, codes)
        grown = log_size(c) - start
        print(f"coordinator log grew {grown} bytes for 4,000 invalid-UTF-8 requests", file=sys.stderr)
        self.assertLess(grown, 8 * 1024, c.log("coordinator")[-2000:])

    def test_failed_tls_handshakes_grow_the_log_by_a_bounded_amount(self):
        certs = make_certs(self.workdir)
        c = self.start(workers=0, extra_coordinator=["--tls-cert", certs["node.pem"], "--tls-key", certs["node.key"]])
        start = log_size(c)
        for _ in range(300):  # a plaintext HTTP/2 client against the TLS port
            with socket.create_connection(("127.0.0.1", c.port), timeout=30) as s:
                s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64)
                while s.recv(4096):
                    pass
        # TLS clients still get in.
        ca = open(certs["ca.pem"], "rb").read()
        stub = grpc.secure_channel(c.address(), grpc.ssl_channel_credentials(ca))
        with self.assertRaises(grpc.RpcError) as e:
            raw_get(stub)(b"\x0a\x03job", timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        grown = log_size(c) - start
        print(f"coordinator log grew {grown} bytes for 300 failed handshakes", file=sys.stderr)
        self.assertLess(grown, 8 * 1024, c.log("coordinator")[-2000:])

    def test_stream_limit_is_announced(self):
        # SETTINGS_MAX_CONCURRENT_STREAMS (id 3) is what the server tells every client.
        c = self.start(workers=0, extra_coordinator=["--max-concurrent-streams", "7", "--max-inflight-mib", "256"])
        self.assertEqual(h2_server_settings(c.port).get(3), 7)
        c2 = self.start(workers=0)
        self.assertEqual(h2_server_settings(c2.port).get(3), 2048)
        for bad in (["--max-concurrent-streams", "0"], ["--max-inflight-mib", "1"]):
            with self.subTest(bad):
                with self.assertRaises(RuntimeError):
                    self.start(workers=0, extra_coordinator=bad)

    def test_worker_port_refuses_pushes_without_the_token_before_reading_them(self):
        token = os.path.join(self.workdir, "worker.token")
        cluster.write_secret(token, "s3cret\n")
        c = self.start(workers=1, extra_coordinator=["--worker-token-file", token],
                       extra_worker=["--worker-token-file", token])
        port = cluster.wait_for_file(os.path.join(self.workdir, "w1.port"))[0]
        pid = c.workers["w1"].pid
        before = cluster.proc_status(pid)["VmRSS"]
        ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)])
        push = ch.stream_unary("/caliber.v1.WorkerService/PushActivations", request_serializer=None,
                               response_deserializer=None)
        chunk = length_delimited(7, b"\0" * (32 * MIB))  # ActivationChunk.data
        with self.assertRaises(grpc.RpcError) as e:
            push(iter([chunk, chunk]), timeout=60)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertLess(cluster.proc_status(pid)["VmRSS"] - before, 48 * 1024)


if __name__ == "__main__":
    unittest.main()
