"""langbuild doctor: the machine report as data (for the wizard) and as the command prints it."""

from __future__ import annotations

import json

import torch

from langbuild.core.environment import OFFLINE_VARIABLES
from langbuild.machine.inventory import machine_report, offline
from tests.test_cli import langbuild


def test_report_reads_this_machine(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "weights.bin").write_bytes(b"\0" * (3 << 20))
    monkeypatch.setenv("LANGBUILD_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("LANGBUILD_BF16_SPEEDUP", "0.5")  # the measurement, forced: bf16 slower than fp32
    report = machine_report()
    assert report["packages"]["torch"] == torch.__version__
    assert report["devices"]["cores"] >= 1 and report["devices"]["ram_gb"] > 0
    assert len(report["devices"]["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if not torch.cuda.is_available():
        assert report["bf16"] == {"fast": False, "auto_chooses": "fp32", "measured_speedup": 0.5,
                                  "reason": "auto: bf16 measured not fast enough on this CPU (measured 0.50x, auto needs 1.3x)"}
    caches = {c["name"].split()[0]: c for c in report["caches"]}
    assert caches["langbuild"]["path"] == str(cache) and abs(caches["langbuild"]["size_gb"] - 3 / 1024) < 1e-3
    assert caches["datasets"]["exists"] is False
    json.dumps(report)  # all plain data


def test_offline_state_follows_the_variables(monkeypatch):
    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert offline()["offline"] is False and offline()["variables_on"] == []
    monkeypatch.setenv("LANGBUILD_OFFLINE", "yes")
    assert offline() == {"offline": True, "variables_on": ["LANGBUILD_OFFLINE"], "variables_checked": list(OFFLINE_VARIABLES)}


def test_doctor_prints_one_screen_and_json(tmp_path):
    env = {"LANGBUILD_BF16_SPEEDUP": "2.0", "LANGBUILD_CACHE": str(tmp_path), "COLUMNS": "120"}
    shown = langbuild("doctor", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "fast bf16" in shown.stdout and "measured 2.00x" in shown.stdout and str(tmp_path) in shown.stdout
    assert len(shown.stdout.splitlines()) < 40  # one screen
    data = json.loads(langbuild("doctor", "--json", cwd=tmp_path, env=env).stdout)
    assert data["offline"]["offline"] is True  # the tests run with HF_HUB_OFFLINE=1
    assert data["optional"]["gguf"]["version"] and set(data) >= {"devices", "bf16", "packages", "caches"}
