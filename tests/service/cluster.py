"""A real Caliber cluster on 127.0.0.1 for tests: a coordinator and workers as separate
processes, an optional moto S3 server with signature checking (tests/tools/moto_s3.py), and a
Python gRPC client built from proto/ at test time (protoc + grpc_python_plugin) — a client
independent of Caliber's own C++ code.

Runs under Debian's /usr/bin/python3 (python3-grpcio). moto and boto3 live in the default
`python3` on PATH; the S3 helpers run there as subprocesses.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("CALIBER_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("CALIBER_BINARY_DIR", os.path.join(ROOT, "build"))
COORDINATOR = os.path.join(BUILD, "coordinator", "caliber-coordinator")
WORKER = os.path.join(BUILD, "workers", "caliber-worker")
CALIBER = os.path.join(BUILD, "cli", "caliber")
MODEL = os.path.join(ROOT, "testdata", "tinyllama-en")
CALIB = os.path.join(MODEL, "calib", "calib_tokens.i32")
PYTHON_WITH_BOTO = shutil.which("python3", path=os.environ.get("CALIBER_TOOLS_PATH", os.environ.get("PATH")))


def load_stubs(out_dir):
    """Generates caliber.v1 Python stubs into out_dir and imports them."""
    proto_dir = os.path.join(ROOT, "proto")
    subprocess.run(["protoc", "-I", proto_dir, "-I", "/usr/include", "--python_out", out_dir,
                    "--grpc_python_out", out_dir, "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"]
                   + [os.path.join(proto_dir, "caliber", "v1", f) for f in
                      ("quant_service.proto", "worker_protocol.proto", "coordinator_state.proto")],
                   check=True)
    for d in (os.path.join(out_dir, "caliber"), os.path.join(out_dir, "caliber", "v1")):
        open(os.path.join(d, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)
    from caliber.v1 import quant_service_pb2, quant_service_pb2_grpc  # noqa: E402
    return quant_service_pb2, quant_service_pb2_grpc


def wait_for_file(path, timeout=30, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read().split()
            if text:
                return [int(x) for x in text]
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before writing {path}")
        time.sleep(0.05)
    raise TimeoutError(path)


class Moto:
    """moto_server with IAM auth on, via tests/tools/moto_s3.py; stops when closed."""

    def __init__(self, buckets=("caliber",)):
        args = [PYTHON_WITH_BOTO, os.path.join(ROOT, "tests", "tools", "moto_s3.py")]
        for b in buckets:
            args += ["--bucket", b]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("moto did not start")
        info = json.loads(line)
        self.endpoint = info["endpoint"]
        self.key_id = info["access_key_id"]
        self.secret = info["secret_access_key"]

    def env(self):
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_REGION": "us-east-1"}

    def client(self, *args, capture=True):
        """tests/tools/s3_client.py (boto3): the independent S3 client."""
        cmd = [PYTHON_WITH_BOTO, os.path.join(ROOT, "tests", "tools", "s3_client.py"), "--endpoint", self.endpoint,
               "--key-id", self.key_id, "--secret", self.secret] + list(args)
        r = subprocess.run(cmd, capture_output=capture, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"s3_client {args}: {r.stderr}")
        return json.loads(r.stdout) if capture and r.stdout.strip() else None

    def upload_inputs(self, bucket="caliber"):
        """The fixture model as s3://BUCKET/m and its calibration ids as s3://BUCKET/d/calib.i32."""
        for f in ("config.json", "model.safetensors", "tokenizer.model"):
            self.client("put", bucket, f"m/{f}", os.path.join(MODEL, f), capture=False)
        self.client("put", bucket, "d/calib.i32", CALIB, capture=False)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """caliber-coordinator + N caliber-worker processes."""

    def __init__(self, workdir, workers=2, extra_coordinator=(), extra_worker=(), env=None, s3=None,
                 worker_timeout_ms=2000, heartbeat_ms=200):
        self.workdir = workdir
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.s3 = s3
        self.common = ["--file-roots", f"{ROOT},{workdir}"]
        if s3 is not None:
            self.common += ["--s3-endpoint", s3.endpoint]
            self.env.update(s3.env())
        self.state_dir = os.path.join(workdir, "state")
        self.coordinator_args = [COORDINATOR, "--listen", "127.0.0.1:0", "--state-dir", self.state_dir,
                                 "--worker-timeout-ms", str(worker_timeout_ms),
                                 "--heartbeat-interval-ms", str(heartbeat_ms)] + self.common + list(extra_coordinator)
        self.extra_worker = list(extra_worker)
        self.coordinator = None
        self.workers = {}
        self.port = None
        self.metrics_port = None
        self.start_coordinator()
        for i in range(workers):
            self.start_worker(f"w{i + 1}")

    def _spawn(self, args, name):
        # The child keeps its own descriptor of the log; ours is closed right away.
        with open(os.path.join(self.workdir, name + ".log"), "ab") as log:
            return subprocess.Popen(args, env=self.env, stderr=log)

    def start_coordinator(self, port=None):
        port_file = os.path.join(self.workdir, "coordinator.port")
        if os.path.exists(port_file):
            os.remove(port_file)
        args = list(self.coordinator_args)
        if port is not None:
            args[args.index("127.0.0.1:0")] = f"127.0.0.1:{port}"
        self.coordinator = self._spawn(args + ["--port-file", port_file], "coordinator")
        self.port, self.metrics_port = wait_for_file(port_file, proc=self.coordinator)
        return self.coordinator

    def start_worker(self, name):
        port_file = os.path.join(self.workdir, f"{name}.port")
        if os.path.exists(port_file):
            os.remove(port_file)
        proc = self._spawn([WORKER, "--coordinator", f"127.0.0.1:{self.port}", "--worker-id", name,
                            "--work-dir", os.path.join(self.workdir, name), "--port-file", port_file]
                           + self.common + self.extra_worker, name)
        wait_for_file(port_file, proc=proc)
        self.workers[name] = proc
        return proc

    def address(self):
        return f"127.0.0.1:{self.port}"

    def log(self, name):
        with open(os.path.join(self.workdir, name + ".log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        for proc in list(self.workers.values()) + [self.coordinator]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in list(self.workers.values()) + [self.coordinator]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def quantize_reference(out_dir, *args):
    """`caliber quantize` in one process: the bytes every distributed job must reproduce."""
    subprocess.run([CALIBER, "quantize", "--model", MODEL, "--calib", CALIB, "--out", out_dir] + list(args),
                   check=True, capture_output=True)


def model_files(directory):
    out = {}
    for base, _, files in os.walk(directory):
        for f in files:
            rel = os.path.relpath(os.path.join(base, f), directory)
            if rel != "report.json":  # timings and input locations differ by design
                with open(os.path.join(base, f), "rb") as fh:
                    out[rel] = fh.read()
    return out


def proc_status(pid):
    """VmRSS and VmSize (KiB) and Threads of a live process, from /proc/PID/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmSize", "Threads"):
                fields[k] = int(v.split()[0])
    return fields


def write_secret(path, text):
    """A token file as an operator must write it: mode 0600 (the daemons refuse group/world access)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with a wider mode
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def new_workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
