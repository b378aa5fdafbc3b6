"""Fixtures: a private redis-server on a free loopback port, and a model the real trainer published to it.

Needs redis-server and the freshet binary (FRESHET_BIN, else `freshet` on PATH); the library is found as
the package finds it (FRESHET_SERVING_LIB, pkg-config, the loader's path).
"""

import os
import shutil
import socket
import subprocess
import time

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, workdir):
        self.port = _free_port()
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.cli("PING").strip() == "PONG":
                return
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def cli(self, *args) -> str:
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)
        return r.stdout

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Trainer:
    """The freshet binary, publishing to the private Redis under one prefix."""

    def __init__(self, binary, workdir, redis_port, prefix="pytest"):
        self.bin, self.work, self.prefix, self.redis_port = binary, workdir, prefix, redis_port
        self.config = os.path.join(workdir, "config.json")
        with open(self.config, "w") as f:
            f.write('{"checkpoint": {"dir": "%s", "every_seconds": 0, "every_samples": 2000},'
                    ' "redis": {"host": "127.0.0.1", "port": %d, "prefix": "%s", "keep_versions": 50}}'
                    % (os.path.join(workdir, "state"), redis_port, prefix))

    def run(self, *args, check=True) -> str:
        r = subprocess.run([self.bin, *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"freshet {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
        return r.stdout

    def gen(self, name, impressions, seed, days=2) -> str:
        path = os.path.join(self.work, name)
        self.run("gen", "--out", path, "--impressions", str(impressions), "--seed", str(seed), "--days", str(days))
        return path

    def replay(self, events) -> str:
        return self.run("replay", events, "-c", self.config)

    def score(self, events) -> dict:
        """`freshet score`: id -> (pctr, pcvr, pctcvr) as the C CLI prints them (%.9g: float32 exactly)."""
        out = {}
        for line in self.run("score", "-c", self.config, "--events", events).splitlines():
            if line.startswith("score "):
                parts = line.split()
                kv = dict(p.split("=", 1) for p in parts[2:])
                out[parts[1]] = (float(kv["pctr"]), float(kv["pcvr"]), float(kv["pctcvr"]))
        return out


@pytest.fixture(scope="session")
def freshet_bin():
    binary = os.environ.get("FRESHET_BIN") or shutil.which("freshet")
    if not binary:
        pytest.fail("set FRESHET_BIN to the freshet binary (tests/integration/test_python_serving.sh does)")
    return binary


@pytest.fixture(scope="session")
def redis(tmp_path_factory):
    r = Redis(tmp_path_factory.mktemp("redis"))
    yield r
    r.stop()


@pytest.fixture(scope="session")
def trainer(freshet_bin, redis, tmp_path_factory):
    """A model trained and published once for the session, with the events it saw."""
    t = Trainer(freshet_bin, str(tmp_path_factory.mktemp("trainer")), redis.port)
    whole = t.gen("whole.jsonl", 9000, seed=5, days=3)
    with open(whole) as f:
        lines = f.readlines()
    # the first two thirds now; the rest (later in event time) is what a test pushes next
    t.events, t.later = os.path.join(t.work, "first.jsonl"), os.path.join(t.work, "later.jsonl")
    cut = 2 * len(lines) // 3
    with open(t.events, "w") as f:
        f.writelines(lines[:cut])
    with open(t.later, "w") as f:
        f.writelines(lines[cut:])
    t.replay(t.events)
    return t
