"""A Hugging Face model folder as one GGUF file, the format llama.cpp, Ollama and LM Studio run.

Written with the ``gguf`` package's writer, following llama.cpp's own converter (convert_hf_to_gguf.py)
for the two families langbuild supports end to end:

* **Llama-style** (SmolLM2, Llama): architecture ``llama``. llama.cpp's rotary kernel pairs dimensions
  differently from Hugging Face's, so the query and key rows of each head are permuted on the way out
  (the reader permutes them back).
* **Gemma-3** (text): architecture ``gemma3``. llama.cpp's RMS norm multiplies by the stored weight
  while Gemma's multiplies by ``1 + weight``, so every norm weight is written plus one. The embedding
  scale (sqrt of the hidden size) is applied by llama.cpp's graph, so the embedding is written as is.

**The tokenizer comes from tokenizer.json**, never from a tokenizer.model: langbuild's extension edits
tokenizer.json (added merges and tokens) and deletes the stale SentencePiece file, and packaged models
have none. Byte-level BPE becomes ``tokenizer.ggml.model = gpt2`` with its merges; SentencePiece-style
BPE (byte fallback, ``▁`` for spaces, as Gemma) becomes ``llama`` with scores that reproduce the merge
order (llama.cpp merges the best-scored pair first) plus the merges themselves. Added tokens keep their
ids: special ones are CONTROL, others USER_DEFINED, so both stay whole. A Unigram tokenizer is refused:
llama.cpp would merge its pieces by score instead of searching the best segmentation, so ids would
differ silently.

Types: f32, f16, bf16 (1-D tensors, the norms, stay f32 as llama.cpp keeps them) and q8_0 (blocks of
32 weights with one f16 scale; a matrix whose rows are not a multiple of 32 falls back to f16).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import LangbuildError

GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
SUPPORTED = "Llama-style (SmolLM2, Llama) and Gemma-3 text models"
_BYTE_PIECE_PREFIX, _METASPACE = "<0x", "▁"


@dataclass
class Vocabulary:
    """What a GGUF stores about a tokenizer, under llama.cpp's tokenizer.ggml.* keys."""

    model: str  # "gpt2" (byte-level BPE) or "llama" (SentencePiece-style)
    pre: str  # llama.cpp's pre-tokenizer name
    tokens: list[str]
    types: list[int]
    scores: list[float]
    merges: list[str]
    special_ids: dict[str, int] = field(default_factory=dict)  # bos, eos, unk, pad
    add_bos: bool = False
    add_space_prefix: bool = False
    chat_template: str | None = None


@dataclass(frozen=True)
class GgufSummary:
    path: Path
    architecture: str
    out_type: str
    tensors: int
    vocabulary: int
    added_tokens: int
    bytes: int


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LangbuildError(f"{path} is missing: GGUF export needs a Hugging Face model folder with {path.name}") from None


def architecture_of(config: dict) -> str:
    """llama.cpp's architecture name for a transformers config, or a one-line refusal."""
    model_type = config.get("model_type")
    if model_type == "llama":
        _check_llama(config)
        return "llama"
    if model_type == "gemma3_text":
        _check_gemma3(config)
        return "gemma3"
    raise LangbuildError(f"GGUF export supports {SUPPORTED}; this model is {model_type!r}: export the safetensors "
                         "folder instead (langbuild export DIR)")


def _refuse_unless(ok: bool, what: str) -> None:
    if not ok:
        raise LangbuildError(f"GGUF export cannot write this model: {what}, which llama.cpp's converter does not "
                             "carry either; export the safetensors folder instead (langbuild export DIR)")


def _rope(config: dict) -> dict:
    return config.get("rope_parameters") or {"rope_theta": config.get("rope_theta", 10000.0), "rope_type": "default"}


def _check_llama(config: dict) -> None:
    _refuse_unless(not config.get("attention_bias") and not config.get("mlp_bias"), "it has attention or MLP biases")
    _refuse_unless(config.get("hidden_act", "silu") == "silu", f"its activation is {config.get('hidden_act')}")
    _refuse_unless(_rope(config).get("rope_type", "default") == "default", "its rotary embedding is scaled")


def _check_gemma3(config: dict) -> None:
    head_dim = config.get("head_dim", 256)
    # llama.cpp scales attention by 1/sqrt(head_dim); Hugging Face by 1/sqrt(query_pre_attn_scalar).
    _refuse_unless(config.get("query_pre_attn_scalar", 256) == head_dim, "its query_pre_attn_scalar is not its head_dim")
    _refuse_unless(not config.get("final_logit_softcapping") and not config.get("attn_logit_softcapping"),
                   "it caps logits")
    rope = _rope(config)
    for kind in ("full_attention", "sliding_attention"):
        _refuse_unless(rope.get(kind, rope).get("rope_type", "default") == "default", "its rotary embedding is scaled")
    pattern = config.get("_sliding_window_pattern", config.get("sliding_window_pattern", 6))
    expected = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
                for i in range(config["num_hidden_layers"])]
    _refuse_unless(config.get("layer_types", expected) == expected, "its sliding-window layers are not every "
                   f"{pattern} layers")


# ----------------------------------------------------------------------------------------- tokenizer

def _is_byte_level(spec: dict) -> bool:
    def has(part: dict | None) -> bool:
        if not part:
            return False
        if part.get("type") == "ByteLevel":
            return True
        return any(has(p) for p in part.get("pretokenizers", []) or part.get("decoders", []))

    return has(spec.get("pre_tokenizer")) or has(spec.get("decoder"))


def _merge_strings(merges: list) -> list[str]:
    return [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in merges]


def _merge_scores(vocab: dict[str, int], merges: list[str]) -> dict[int, float]:
    """Scores under which "merge the best-scored adjacent pair" replays BPE's merge order: the token the
    i-th merge makes scores -i; tokens no merge makes (characters, bytes) score below all of them."""
    scores: dict[int, float] = {}
    for rank, merge in enumerate(merges):
        left, right = merge.split(" ", 1)
        token_id = vocab.get(left + right)
        if token_id is not None and token_id not in scores:
            scores[token_id] = -float(rank)
    floor = -float(len(merges))
    return {token_id: scores.get(token_id, floor - token_id) for token_id in vocab.values()}


def _token_type(token: str, spm: bool, unk: str | None) -> int:
    from gguf import TokenType

    if token == unk:
        return TokenType.UNKNOWN
    if spm and token.startswith(_BYTE_PIECE_PREFIX) and token.endswith(">") and len(token) == 6:
        return TokenType.BYTE
    return TokenType.NORMAL


def _added_token_types(spec: dict) -> dict[int, int]:
    from gguf import TokenType

    return {t["id"]: TokenType.CONTROL if t.get("special") else TokenType.USER_DEFINED
            for t in spec.get("added_tokens", [])}


def _special_ids(tokenizer_config: dict, index: dict[str, int], config: dict) -> dict[str, int]:
    """bos/eos/unk/pad ids: the tokenizer's own names first, the model config's ids otherwise."""
    ids = {}
    for name in ("bos", "eos", "unk", "pad"):
        token = tokenizer_config.get(f"{name}_token")
        if isinstance(token, dict):
            token = token.get("content")
        if token in index:
            ids[name] = index[token]
        elif isinstance(config.get(f"{name}_token_id"), int):
            ids[name] = config[f"{name}_token_id"]
    return ids


def _adds_bos(spec: dict, bos: str | None) -> bool:
    processor = spec.get("post_processor") or {}
    single = processor.get("single") or []
    return any(item.get("SpecialToken", {}).get("id") == bos for item in single if isinstance(item, dict))


def _chat_template(folder: Path, tokenizer_config: dict) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = tokenizer_config.get("chat_template")
    return template if isinstance(template, str) else None


def read_vocabulary(folder: Path, config: dict, rows: int) -> Vocabulary:
    """The tokenizer of ``folder`` (from tokenizer.json) as GGUF stores it, padded to the model's ``rows``."""
    spec = _read_json(folder / "tokenizer.json")
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise LangbuildError(f"GGUF export supports BPE tokenizers; this one is {model.get('type')}, which llama.cpp "
                             "would split differently from transformers: export the safetensors folder instead")
    tokenizer_config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    byte_level = _is_byte_level(spec)
    vocab: dict[str, int] = dict(model["vocab"])
    for added in spec.get("added_tokens", []):
        vocab.setdefault(added["content"], added["id"])
    index = {token: token_id for token, token_id in vocab.items()}
    size = max(vocab.values()) + 1
    if size > rows:
        raise LangbuildError(f"the tokenizer has {size} tokens but the model only {rows} embedding rows: the folder's "
                             "tokenizer and weights do not belong together")
    by_id: dict[int, str] = {token_id: token for token, token_id in vocab.items()}
    merges = _merge_strings(model.get("merges", []))
    scores = _merge_scores(vocab, merges)
    added_types = _added_token_types(spec)
    unk = model.get("unk_token")
    tokens, types, score_list = [], [], []
    from gguf import TokenType

    for token_id in range(rows):
        token = by_id.get(token_id)
        if token is None:  # rows padded to a multiple of 64, or a gap: placeholders no text reaches
            tokens.append(f"[PAD{token_id}]")
            types.append(TokenType.UNUSED)
            score_list.append(-1e9)
            continue
        tokens.append(token)
        types.append(added_types.get(token_id, _token_type(token, not byte_level, unk)))
        score_list.append(scores.get(token_id, 0.0))
    specials = _special_ids(tokenizer_config, index, config)
    bos = by_id.get(specials["bos"]) if "bos" in specials else None
    return Vocabulary(
        model="gpt2" if byte_level else "llama",
        pre=_pre_tokenizer_name(config, byte_level),
        tokens=tokens, types=types, scores=score_list, merges=merges, special_ids=specials,
        add_bos=_adds_bos(spec, bos), add_space_prefix=_prepends_space(spec),
        chat_template=_chat_template(folder, tokenizer_config),
    )


def _pre_tokenizer_name(config: dict, byte_level: bool) -> str:
    # llama.cpp names the pre-tokenizer a byte-level vocabulary was trained with; SmolLM's is "smollm"
    # (GPT-2's split). SentencePiece-style vocabularies use "default".
    return "smollm" if byte_level and config.get("model_type") == "llama" else "default"


def _prepends_space(spec: dict) -> bool:
    parts = [spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}]
    for part in list(parts):
        parts += part.get("normalizers", []) + part.get("pretokenizers", [])
    return any(p.get("type") == "Prepend" or (p.get("type") == "Metaspace" and p.get("prepend_scheme", "always") != "never")
               for p in parts)


def _write_vocabulary(writer, vocabulary: Vocabulary) -> None:
    writer.add_tokenizer_model(vocabulary.model)
    writer.add_tokenizer_pre(vocabulary.pre)
    writer.add_token_list(vocabulary.tokens)
    writer.add_token_types(vocabulary.types)
    writer.add_token_scores(vocabulary.scores)
    writer.add_token_merges(vocabulary.merges)
    setters = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "unk": writer.add_unk_token_id,
               "pad": writer.add_pad_token_id}
    for name, token_id in vocabulary.special_ids.items():
        setters[name](token_id)
    writer.add_add_bos_token(vocabulary.add_bos)
    writer.add_add_eos_token(False)
    if vocabulary.model == "llama":
        writer.add_add_space_prefix(vocabulary.add_space_prefix)
    if vocabulary.chat_template:
        writer.add_chat_template(vocabulary.chat_template)


# ------------------------------------------------------------------------------------ hyperparameters

def _write_hyperparameters(writer, architecture: str, config: dict) -> None:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = _rope(config)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads", heads))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    if architecture == "llama":
        writer.add_vocab_size(config["vocab_size"])
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(rope["rope_theta"])
    else:
        writer.add_rope_freq_base(rope.get("full_attention", rope)["rope_theta"])
        writer.add_rope_freq_base_swa(rope.get("sliding_attention", rope)["rope_theta"])
        writer.add_sliding_window(config["sliding_window"])


# -------------------------------------------------------------------------------------------- tensors

_LAYER_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
}
# The norm after attention is the norm before the MLP in Llama; Gemma-3 has four norms per layer.
_LLAMA_LAYER_NAMES = {**_LAYER_NAMES, "post_attention_layernorm": "ffn_norm"}
_GEMMA3_LAYER_NAMES = {**_LAYER_NAMES, "post_attention_layernorm": "post_attention_norm",
                       "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm"}


def gguf_tensor_name(architecture: str, name: str) -> str | None:
    """llama.cpp's name for a Hugging Face weight, or None for one it does not store (rotary caches)."""
    name = name.removeprefix("model.")
    if name == "embed_tokens.weight":
        return "token_embd.weight"
    if name == "norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    parts = name.split(".")
    if parts[0] == "layers" and parts[-1] == "weight":
        table = _LLAMA_LAYER_NAMES if architecture == "llama" else _GEMMA3_LAYER_NAMES
        target = table.get(".".join(parts[2:-1]))
        if target:
            return f"blk.{parts[1]}.{target}.weight"
    if "rotary_emb" in name:
        return None
    raise LangbuildError(f"GGUF export does not know where weight {name!r} goes: this {architecture} checkpoint has "
                         "parts llama.cpp's layout lacks; export the safetensors folder instead")


def _permute_for_rope(weight, heads: int):
    """Hugging Face's rotary layout (halves) to llama.cpp's (interleaved pairs), per head."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _prepared(architecture: str, gguf_name: str, weight, config: dict):
    """The weight as llama.cpp expects it (fp32 numpy)."""
    import numpy as np

    array = weight.float().numpy()
    if architecture == "llama" and gguf_name.endswith(("attn_q.weight", "attn_k.weight")):
        heads = config["num_attention_heads"] if "attn_q" in gguf_name else config.get("num_key_value_heads",
                                                                                       config["num_attention_heads"])
        array = _permute_for_rope(array, heads)
    if architecture == "gemma3" and gguf_name.endswith("norm.weight"):
        array = array + 1.0  # Gemma normalises by (1 + w); llama.cpp by w
    return np.ascontiguousarray(array, dtype=np.float32)


def _encoded(array, out_type: str):
    """(data, raw ggml type or None) for ``out_type``; 1-D tensors stay f32 as llama.cpp keeps them."""
    import numpy as np
    from gguf import GGMLQuantizationType, quants

    if out_type == "f32" or array.ndim == 1:
        return array, None
    if out_type == "f16" or (out_type == "q8_0" and array.shape[-1] % 32):
        return array.astype(np.float16), None
    qtype = GGMLQuantizationType.BF16 if out_type == "bf16" else GGMLQuantizationType.Q8_0
    return quants.quantize(array, qtype), qtype


def _file_type(out_type: str) -> int:
    from gguf import LlamaFileType

    return {"f32": LlamaFileType.ALL_F32, "f16": LlamaFileType.MOSTLY_F16, "bf16": LlamaFileType.MOSTLY_BF16,
            "q8_0": LlamaFileType.MOSTLY_Q8_0}[out_type]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise LangbuildError(f"{folder} has no .safetensors weights to convert")
    weights = {}
    for path in files:
        weights.update(load_file(str(path)))
    return weights


def _embedding_rows(weights: dict) -> int:
    for name in ("model.embed_tokens.weight", "embed_tokens.weight"):
        if name in weights:
            return weights[name].shape[0]
    raise LangbuildError("the checkpoint has no embed_tokens weight: it is not a causal language model langbuild made")


def write_gguf(model_folder: Path, destination: Path, out_type: str = "f16", name: str | None = None) -> GgufSummary:
    """Convert the Hugging Face folder ``model_folder`` into the GGUF file ``destination``.

    The file is written beside ``destination`` and renamed into place, so an interrupted export never
    leaves half a file under the final name.
    """
    import gguf

    if out_type not in GGUF_TYPES:
        raise LangbuildError(f"unknown GGUF type {out_type!r}: choose one of {', '.join(GGUF_TYPES)}")
    model_folder, destination = Path(model_folder), Path(destination)
    config = _read_json(model_folder / "config.json")
    architecture = architecture_of(config)
    weights = _weights(model_folder)
    rows = _embedding_rows(weights)
    vocabulary = read_vocabulary(model_folder, config, rows)
    config = {**config, "vocab_size": rows}
    if config.get("tie_word_embeddings", True):
        weights.pop("lm_head.weight", None)  # tied: llama.cpp reuses token_embd when output is absent

    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    writer = gguf.GGUFWriter(str(partial), architecture)
    writer.add_name(name or config.get("_name_or_path") or model_folder.name)
    writer.add_file_type(_file_type(out_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _write_hyperparameters(writer, architecture, config)
    _write_vocabulary(writer, vocabulary)
    count = 0
    for hf_name in sorted(weights):
        gguf_name = gguf_tensor_name(architecture, hf_name)
        if gguf_name is None:
            continue
        data, raw_type = _encoded(_prepared(architecture, gguf_name, weights[hf_name], config), out_type)
        writer.add_tensor(gguf_name, data, raw_dtype=raw_type)
        count += 1
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    added = sum(1 for t in vocabulary.types if t in (gguf.TokenType.CONTROL, gguf.TokenType.USER_DEFINED))
    return GgufSummary(destination, architecture, out_type, count, len(vocabulary.tokens), added,
                       destination.stat().st_size)


# ---------------------------------------------------------------------------------------- checking

@dataclass(frozen=True)
class GgufCheck:
    """How the GGUF read back by an independent reader (transformers' GGUF loader) compares to the folder."""

    lines: int
    lines_same_ids: int
    max_abs_logit_diff: float
    max_abs_logit: float  # the scale the difference is read against
    first_different_line: str | None

    @property
    def tokenizer_identical(self) -> bool:
        return self.lines_same_ids == self.lines


def check_gguf(model_folder: Path, gguf_path: Path, texts: list[str], logit_lines: int = 4) -> GgufCheck:
    """Load ``gguf_path`` with transformers' GGUF reader and compare with ``model_folder``: the token ids
    of every line of ``texts``, and the logits on the first ``logit_lines`` of them."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    # The configuration is read from the GGUF once and handed to both loaders: each would otherwise
    # parse the file's metadata again (every token string: ~9 s for a 49k vocabulary).
    read_config = AutoConfig.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    reference_tokenizer = AutoTokenizer.from_pretrained(str(model_folder))
    read_tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, config=read_config)
    same, first_different = 0, None
    for line in texts:
        if reference_tokenizer(line)["input_ids"] == read_tokenizer(line)["input_ids"]:
            same += 1
        elif first_different is None:
            first_different = line
    reference = AutoModelForCausalLM.from_pretrained(str(model_folder), dtype=torch.float32, use_safetensors=True).eval()
    read = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, config=read_config,
                                                dtype=torch.float32).eval()
    worst = scale = 0.0
    with torch.no_grad():
        for line in texts[:logit_lines]:
            ids = reference_tokenizer(line, return_tensors="pt")["input_ids"][:, :128]
            expected = reference(input_ids=ids).logits
            worst = max(worst, (expected - read(input_ids=ids).logits).abs().max().item())
            scale = max(scale, expected.abs().max().item())
    return GgufCheck(len(texts), same, worst, scale, first_different)
