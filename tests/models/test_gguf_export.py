"""GGUF export, checked by reading the file back with an independent reader (transformers' GGUF loader).

Two tiny families shaped like the real ones: a Llama-style model with a byte-level BPE tokenizer
(SmolLM2's shape) and a Gemma-3 model with a SentencePiece-style BPE (byte fallback, ``▁`` for spaces,
Gemma's shape). Both tokenizers are extended with continued-BPE merges learned on Chichewa, as the
extend step does, so the file must carry new merges and tokens, and no tokenizer.model exists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from langbuild.core.errors import LangbuildError
from langbuild.extension.tokenizer_file import save_extended_tokenizer
from langbuild.extension.vocabulary import apply_extension, continue_bpe
from langbuild.models.gguf_export import GGUF_TYPES, check_gguf, write_gguf
from tests.tiny import chichewa_split, english_lines, own_copy

GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
# Largest |logit difference| allowed, as a fraction of the largest |logit|: f16 keeps 11 mantissa bits,
# bf16 8, q8_0 8 bits per block of 32 weights (measured here: ~1e-3, ~1e-2 and up to 8e-2, on weights inflated 8x).
RELATIVE_TOLERANCE = {"f32": 1e-6, "f16": 4e-3, "bf16": 3e-2, "q8_0": 1e-1}


def _byte_level_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|im_end|>")


def _gemma_style_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=GEMMA_SPECIALS + byte_pieces)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", pad_token="<pad>")


def _model(family: str, vocab: int):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if family == "llama":
        return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                            tie_word_embeddings=True, bos_token_id=1, eos_token_id=2))
    return Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                              num_attention_heads=2, num_key_value_heads=1, head_dim=256,
                                              query_pre_attn_scalar=256, max_position_embeddings=256, sliding_window=64,
                                              bos_token_id=2, eos_token_id=1, pad_token_id=0))


def _scale_up_weights(model) -> None:
    """Random init gives near-uniform logits; larger weights make any misplaced tensor show."""
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.mul_(8.0)


def build_extended(folder: Path, family: str, new_tokens: int = 150) -> tuple[Path, list[int]]:
    """A tiny ``family`` model whose tokenizer was extended with Chichewa merges; returns it and the new ids."""
    from tokenizers import Tokenizer

    train, _ = chichewa_split(train_books=2)
    base = _byte_level_tokenizer(english_lines()) if family == "llama" else _gemma_style_tokenizer(english_lines())
    spec = json.loads(base.backend_tokenizer.to_str())
    backend = Tokenizer.from_str(json.dumps(spec))
    extended_spec, new_ids = apply_extension(spec, continue_bpe(backend, spec, train, new_tokens, 2))
    folder.mkdir(parents=True, exist_ok=True)
    save_extended_tokenizer(base, extended_spec, folder)
    if family == "llama":
        (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    model = _model(family, max(new_ids) + 1)
    model.resize_token_embeddings(max(new_ids) + 1, pad_to_multiple_of=64)  # padded rows, as extend leaves them
    _scale_up_weights(model)
    model.save_pretrained(folder)
    return folder, new_ids


@pytest.fixture(scope="module")
def extended_models(tmp_path_factory) -> dict[str, tuple[Path, list[int]]]:
    root = tmp_path_factory.mktemp("gguf-models")
    return {family: build_extended(root / family, family) for family in ("llama", "gemma3")}


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    return chichewa_split()[1][:60] + english_lines()[-20:]


@pytest.mark.parametrize("out_type", GGUF_TYPES)
@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_gguf_read_back_matches_the_safetensors_model(extended_models, held_out, tmp_path, family, out_type):
    from transformers import AutoTokenizer

    folder, new_ids = extended_models[family]
    assert not (folder / "tokenizer.model").exists()  # the case that breaks other converters
    used = {i for line in held_out for i in AutoTokenizer.from_pretrained(str(folder))(line)["input_ids"]}
    assert used & set(new_ids), "the extension must matter on held-out text, or this test proves nothing"
    summary = write_gguf(folder, tmp_path / f"{family}-{out_type}.gguf", out_type)
    check = check_gguf(folder, summary.path, held_out)
    assert check.tokenizer_identical, f"ids differ on: {check.first_different_line!r}"
    relative = check.max_abs_logit_diff / check.max_abs_logit
    print(f"{family} {out_type}: max |logit diff| {check.max_abs_logit_diff:.2e} of {check.max_abs_logit:.1f} "
          f"({relative:.1e}), {summary.bytes} bytes")
    assert relative <= RELATIVE_TOLERANCE[out_type]
    if out_type != "f32":
        assert check.max_abs_logit_diff > 0  # the weights really were rounded, so the comparison can see a change


def test_gguf_carries_added_tokens_merges_and_chat_template(extended_models, tmp_path):
    from gguf import GGUFReader, TokenType

    folder, new_ids = extended_models["llama"]
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    path = write_gguf(folder, tmp_path / "m.gguf", "f16").path
    reader = GGUFReader(str(path))

    def strings(key: str) -> list[str]:
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens, merges = strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")
    vocab = spec["model"]["vocab"]
    assert all(tokens[vocab[token]] == token for token in vocab)  # every id kept, new ones included
    assert merges[-1] == " ".join(spec["model"]["merges"][-1])  # the appended merges travel
    types = reader.fields["tokenizer.ggml.token_type"]
    assert int(types.parts[types.data[1]][0]) == TokenType.CONTROL  # <|im_start|>
    template = reader.fields["tokenizer.chat_template"]
    assert bytes(template.parts[template.data[0]]).decode() == CHAT_TEMPLATE
    assert len(tokens) % 64 == 0 and tokens[-1].startswith("[PAD")  # the model's padded rows are named


def test_gguf_export_refuses_unsupported_models_in_one_line(tiny_models, tmp_path):
    with pytest.raises(LangbuildError, match=r"GGUF export supports Llama-style .* this model is 'gpt2'") as err:
        write_gguf(tiny_models["gpt2-bytelevel"], tmp_path / "x.gguf")
    assert "\n" not in str(err.value)
    with pytest.raises(LangbuildError, match="GGUF export supports BPE tokenizers; this one is Unigram"):
        write_gguf(tiny_models["llama-spm"], tmp_path / "x.gguf")
    assert not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(LangbuildError, match="unknown GGUF type 'q4'"):
        write_gguf(tiny_models["llama-spm"], tmp_path / "x.gguf", "q4")


@pytest.mark.slow
def test_gguf_export_of_the_packaged_smollm2(tmp_path):
    from langbuild.models.loading import resolve_model

    folder = resolve_model("smollm2-135m")
    _, ruth = chichewa_split()
    summary = write_gguf(folder, tmp_path / "smollm2-q8_0.gguf", "q8_0")
    check = check_gguf(folder, summary.path, ruth[:100] + english_lines()[:50], logit_lines=3)
    assert check.tokenizer_identical, check.first_different_line
    assert 0 < check.max_abs_logit_diff < 0.1 * check.max_abs_logit  # measured 1.71 of 38.5 (benchmarks/RESULTS.md)


def _tiny_llama_base(folder: Path) -> Path:
    """A tiny Llama-style base with a byte-level BPE (SmolLM2's shape), not yet extended."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _byte_level_tokenizer(english_lines())
    tokenizer.save_pretrained(folder)
    _model("llama", len(tokenizer)).save_pretrained(folder)
    return folder


def test_cli_export_gguf_of_a_trained_project(tmp_path):
    """The whole path a user takes: a project run through train (extend included), then export --gguf."""
    from tests.test_cli import assert_one_line_error, langbuild
    from tests.tiny import tiny_project_through

    root = tiny_project_through(tmp_path / "project", _tiny_llama_base(tmp_path / "base"), step="train")
    result = langbuild("export", tmp_path / "out" / "model-q8_0.gguf", "--gguf", "q8_0", cwd=root)
    assert result.returncode == 0, result.stderr
    same = re.search(r"same ids on (\d+)/(\d+) held-out lines", " ".join(result.stdout.split()))
    assert same and same[1] == same[2] and int(same[2]) > 50, result.stdout
    assert (tmp_path / "out" / "model-q8_0.gguf").stat().st_size > 0
    assert_one_line_error(langbuild("export", tmp_path / "out" / "model-q8_0.gguf", "--gguf", "q8_0", cwd=root))
    assert_one_line_error(langbuild("export", tmp_path / "out" / "model.bin", "--gguf", "f16", cwd=root))
    assert_one_line_error(langbuild("export", tmp_path / "x.gguf", "--gguf", "q4_k", cwd=root), code=2)


def test_cli_export_gguf_refuses_an_unsupported_project_in_one_line(finished_projects, tmp_path):
    from tests.test_cli import assert_one_line_error, langbuild

    result = langbuild("export", tmp_path / "m.gguf", "--gguf", "f16", cwd=own_copy(finished_projects["gpt2-bytelevel"], tmp_path))
    assert_one_line_error(result)
    assert "GGUF export supports Llama-style" in result.stderr and not (tmp_path / "m.gguf").exists()
