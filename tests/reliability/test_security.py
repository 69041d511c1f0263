"""Safe by default: no pickle, no shell, remote code only when asked for (and then with a warning)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import langbuild
from tests.tiny import make_tiny_project

PACKAGE = Path(langbuild.__file__).parent


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _source_calls():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, name in _calls(tree):
            yield path.relative_to(PACKAGE), node, name


def _keyword(node: ast.Call, name: str):
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def test_torch_load_always_refuses_pickled_code():
    loads = [(path, node) for path, node, name in _source_calls() if name.endswith("torch.load")]
    assert loads, "expected the optimizer-state load in training/checkpoints.py"
    for path, node in loads:
        value = _keyword(node, "weights_only")
        assert isinstance(value, ast.Constant) and value.value is True, f"{path}:{node.lineno} torch.load without weights_only=True"


def test_no_pickle_no_shell_no_eval():
    forbidden = {"pickle.load", "pickle.loads", "os.system", "os.popen", "eval", "exec", "subprocess.getoutput",
                 "subprocess.getstatusoutput"}
    found = [f"{path}:{node.lineno} {name}" for path, node, name in _source_calls() if name in forbidden]
    shells = [f"{path}:{node.lineno}" for path, node, name in _source_calls()
              if name.startswith("subprocess.") and isinstance(_keyword(node, "shell"), ast.Constant)
              and _keyword(node, "shell").value]
    assert not found and not shells, found + shells


def test_trust_remote_code_is_never_switched_on_in_code():
    for path, node, _ in _source_calls():
        value = _keyword(node, "trust_remote_code")
        assert not (isinstance(value, ast.Constant) and value.value is True), f"{path}:{node.lineno}"


def test_models_load_with_safetensors_only():
    calls = [(path, node) for path, node, name in _source_calls() if name.endswith("AutoModelForCausalLM.from_pretrained")]
    for path, node in calls:
        if _keyword(node, "gguf_file") is not None:
            continue  # the packaged GGUF models: a data format without code, converted once to safetensors
        value = _keyword(node, "use_safetensors")
        assert isinstance(value, ast.Constant) and value.value is True, f"{path}:{node.lineno}"


CUSTOM_CODE = '''
from pathlib import Path
from transformers import GPT2Config, GPT2LMHeadModel

Path({marker!r}).write_text("ran")


class CustomConfig(GPT2Config):
    model_type = "customgpt"


class CustomModel(GPT2LMHeadModel):
    config_class = CustomConfig
'''


def _custom_code_model(tiny_model: Path, folder: Path, marker: Path) -> Path:
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="customgpt", architectures=["CustomModel"],
                  auto_map={"AutoConfig": "custom.CustomConfig", "AutoModelForCausalLM": "custom.CustomModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "custom.py").write_text(CUSTOM_CODE.format(marker=str(marker)))
    return folder


def _select(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LANGBUILD_DEBUG": "0", "HF_MODULES_CACHE": str(root.parent / "modules")}
    return subprocess.run([sys.executable, "-m", "langbuild", "run", "-C", str(root), "--until", "select"],
                          env=env, capture_output=True, text=True)


def test_model_code_runs_only_with_the_flag_and_then_with_a_warning(tiny_models, tmp_path):
    marker = tmp_path / "CODE_RAN"
    model = _custom_code_model(tiny_models["gpt2-bytelevel"], tmp_path / "custom-model", marker)
    refused = make_tiny_project(tmp_path / "refused", model)
    result = _select(refused)
    assert result.returncode != 0 and "project.trust_remote_code" in result.stderr
    assert not marker.exists(), "the model's code ran without project.trust_remote_code"

    allowed = make_tiny_project(tmp_path / "allowed", model, **{"project.trust_remote_code": True})
    result = _select(allowed)
    assert "warning: project.trust_remote_code is on" in " ".join(result.stdout.split())
    assert marker.exists(), result.stderr[-1000:]
