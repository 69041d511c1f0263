"""benchmarks/gpu_check.py: its CPU smoke passes (so the GPU check cannot rot between GPU runs), and the
model shapes it builds with random weights are those of the packaged models."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402

MUST_PASS = ("train bf16", "kill -9 and resume", "embeddings + LoRA stages", "held-out check", "out of memory -> one line",
             "DDP, world size 1", "FSDP, world size 1")


def test_the_cpu_smoke_runs_every_check_and_passes(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--cpu-smoke", "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["passed"] and report["mode"] == "cpu-smoke"
    first = next(iter(gpu_check.SMOKE_MODELS))
    statuses = {(c["model"], c["check"]): c["status"] for c in report["checks"]}
    assert all(statuses[(first, check)] == "PASS" for check in MUST_PASS), statuses
    assert all(status in ("PASS", "SKIP") for status in statuses.values()), statuses
    for name in gpu_check.SMOKE_MODELS:  # every model trains in the smoke, not only the first
        assert statuses[(name, "train bf16")] == "PASS"
        assert report["models"][name]["tokens_per_s"] > 0
    assert f"PASS  {first} kill -9 and resume" in result.stdout
    assert "out of memory training" in result.stdout


def _packaged_config(name: str) -> dict:
    """The packaged model's own config: its converted folder's, or read from its GGUF header when it has
    not been converted on this machine (a clean CI run converts only SmolLM2), so the check never skips."""
    from langbuild.models.candidates import candidate_config

    return candidate_config(name, Path(".")).to_dict()


@pytest.mark.parametrize("name", list(gpu_check.MODELS))
def test_the_random_models_have_the_packaged_models_shapes(name):
    from transformers import AutoConfig

    model_type, shape = gpu_check.MODELS[name]
    packaged = _packaged_config(name)
    built = AutoConfig.for_model(model_type, **shape).to_dict()
    assert packaged["model_type"] == model_type
    for key, value in shape.items():
        if isinstance(value, float):
            assert math.isclose(packaged[key], value, rel_tol=1e-3), key
        else:
            assert packaged[key] == value, key
        assert built[key] == value, key  # the config class kept what it was given
