"""No network: the whole tiny pipeline runs with every socket to another machine refused.

A ``sitecustomize`` module on PYTHONPATH patches the socket layer in the langbuild process and in
every process it starts (spawned corpus workers, accelerate, lm-eval): any connection or name lookup
for a host other than this machine is logged and refused. The test passes only if the pipeline
finishes and the log stays empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny import make_tiny_project

pytestmark = pytest.mark.timeout(900)

GUARD = '''
import os, socket

_LOG = os.environ["LANGBUILD_SOCKET_LOG"]
_LOCAL = ("localhost", "127.0.0.1", "::1", "", None)


def _refuse(what):
    with open(_LOG, "a") as handle:
        handle.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"network blocked by the offline test: {what}")


def _local(address):
    return address[0] in _LOCAL  # (host, port) or (host, port, flowinfo, scope_id)


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address):
        _refuse(f"connect {address}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address):
        _refuse(f"connect_ex {address}")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL and host != b"localhost":
        _refuse(f"getaddrinfo {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
'''


def _guarded_env(tmp_path: Path, **extra: str) -> tuple[dict[str, str], Path]:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "sockets.log"
    log.write_text("")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")]),
           "LANGBUILD_SOCKET_LOG": str(log), "LANGBUILD_DEBUG": "1", **extra}
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)  # only --offline may switch them on
    return env, log


def test_the_guard_really_blocks_connections(tmp_path):
    env, log = _guarded_env(tmp_path)
    probe = ("import urllib.request\ntry:\n    urllib.request.urlopen('https://huggingface.co', timeout=5)\n"
             "except OSError as e:\n    print('blocked', e)\n")
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert "blocked" in result.stdout and "huggingface.co" in log.read_text()


@pytest.mark.parametrize("switch", ["--offline", "HF_HUB_OFFLINE=1"])
def test_the_whole_pipeline_runs_with_the_network_blocked(tiny_models, tmp_path, switch):
    root = make_tiny_project(tmp_path / "project", tiny_models["llama-spm"], **{"corpus.workers": 2})
    env, log = _guarded_env(tmp_path)
    flags = [switch] if switch.startswith("--") else []
    if not flags:
        env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run([sys.executable, "-m", "langbuild", *flags, "run", "-C", str(root)], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert log.read_text() == "", f"network attempts: {log.read_text()[:2000]}"
    states = json.loads(subprocess.run([sys.executable, "-m", "langbuild", "status", "-C", str(root), "--json"], env=env,
                                       capture_output=True, text=True, check=True).stdout)
    assert [row["state"] for row in states] == ["done"] * len(states)


def test_a_hub_model_offline_fails_in_one_line_without_touching_the_network(tiny_models, tmp_path):
    root = make_tiny_project(tmp_path / "project", tiny_models["llama-spm"],
                             **{"select.candidates": ["HuggingFaceTB/SmolLM2-135M"]})
    env, log = _guarded_env(tmp_path, HF_HOME=str(tmp_path / "hf-home"), LANGBUILD_DEBUG="0")
    result = subprocess.run([sys.executable, "-m", "langbuild", "--offline", "run", "-C", str(root), "--until", "select"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "offline mode is on" in result.stderr
    assert log.read_text() == ""
