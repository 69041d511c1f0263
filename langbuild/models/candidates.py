"""Which candidate base models fit this machine, known before any weight is read.

A candidate's config comes from its local folder (config.json), its packaged GGUF's header, or the hub
(only when reachable or cached). The model is then built on PyTorch's meta device, which allocates
nothing, and sized by the very estimate the select step uses (``selection.memory_estimate``): the
largest of the train stages', for the project's batch, sequence length, precision and processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LangbuildError
from .loading import PACKAGED, converted_folder, is_installed, is_model_folder

# GGUF architecture -> transformers model type, where they differ (Gemma-3's text model).
_GGUF_MODEL_TYPES = {"gemma3": "gemma3_text"}


@dataclass(frozen=True)
class CandidateFit:
    name: str
    kind: str  # packaged | local | hub
    parameters: int | None = None
    memory_bytes: int | None = None  # the estimate of the train stage that needs the most
    stage: str | None = None  # that stage
    fits: bool | None = None  # None: unknown (no config)
    note: str = ""  # why something is unknown, or how to install it


def _config_from_gguf(path: Path):
    from transformers import AutoConfig
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    from .gguf_header import read_gguf_header

    header = read_gguf_header(path)
    architecture = header.metadata["general.architecture"]
    mapping = GGUF_CONFIG_MAPPING.get(architecture)
    if mapping is None:
        raise LangbuildError(f"{path}: GGUF architecture '{architecture}' is not one transformers reads")
    values = {}
    for key, name in mapping.items():
        if name and f"{architecture}.{key}" in header.metadata:
            values[name] = header.metadata[f"{architecture}.{key}"]
    values.setdefault("vocab_size", header.metadata.get("tokenizer.ggml.tokens"))
    # As transformers' GGUF loader decides it: no separate output matrix means a tied one.
    values["tie_word_embeddings"] = "output.weight" not in header.tensors
    return AutoConfig.for_model(_GGUF_MODEL_TYPES.get(architecture, architecture), **values)


def candidate_config(name: str, root: Path):
    """The transformers config of a candidate, without its weights; LangbuildError saying why not."""
    from transformers import AutoConfig

    local = Path(name).expanduser()
    local = local if local.is_absolute() else root / local
    if local.exists():
        if not is_model_folder(local):
            raise LangbuildError(f"{local} is not a Hugging Face model folder (no config.json)")
        return AutoConfig.from_pretrained(str(local))
    if name in PACKAGED:
        spec = PACKAGED[name]
        if not is_installed(spec):
            raise LangbuildError(f"not installed: {spec.pip_install}")
        converted = converted_folder(name)
        if is_model_folder(converted):
            return AutoConfig.from_pretrained(str(converted))
        return _config_from_gguf(spec.header_file())
    try:
        return AutoConfig.from_pretrained(name)
    except Exception as err:  # offline, unknown, gated: the table says unknown, select will say more
        raise LangbuildError(f"its config is neither cached nor reachable on the hub ({type(err).__name__})") from None


def candidate_kind(name: str, root: Path) -> str:
    local = Path(name).expanduser()
    if (local if local.is_absolute() else root / local).exists():
        return "local"
    return "packaged" if name in PACKAGED else "hub"


def meta_model(config):
    """The model built on the meta device: every shape, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    from .loading import quiet_hf

    quiet_hf()
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def candidate_fit(name: str, root: Path, plan) -> CandidateFit:
    """How much memory training ``name`` would take under ``plan`` (a selection.Plan) and whether it fits."""
    from .loading import parameter_count
    from .selection import memory_estimate

    kind = candidate_kind(name, root)
    try:
        model = meta_model(candidate_config(name, root))
    except LangbuildError as err:
        return CandidateFit(name, kind, note=str(err))
    estimate = memory_estimate(model, plan)
    return CandidateFit(name, kind, parameter_count(model), estimate["memory_bytes"]["total"], estimate["memory_stage"],
                        estimate["fits"])


def recommend(fits: list[CandidateFit]) -> str | None:
    """The largest candidate that fits: more parameters learn a new language better when they fit."""
    fitting = [fit for fit in fits if fit.fits]
    return max(fitting, key=lambda fit: fit.parameters).name if fitting else None
