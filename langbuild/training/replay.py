"""Source-language replay text against catastrophic forgetting, from one of three places.

``train.replay_text`` names where the replayed text comes from:

* a packaged text (``flores-eng-a``: 506 FLORES+ sentences, ~15k tokens) or a file of the project;
* a dataset, the way ``corpus.paths`` names one: ``hf:<id>[:<config>[:<split>]][?revision=...]`` (streamed
  online, its prepared local copy offline; parsed by ``corpus.hub_source``), a folder written by
  ``datasets.save_to_disk``, a folder, a glob, .jsonl/.txt/.parquet/... files. Only the first
  ``train.replay_tokens`` tokens' worth is read (estimated from characters), so naming a hub dataset
  of a billion rows reads a few hundred documents, not the dataset;
* ``self``: text the base model writes itself, as in self-synthesised rehearsal (Huang et al. 2024,
  "Mitigating Catastrophic Forgetting in Large Language Models with Self-Synthesized Rehearsal",
  ACL 2024). When the original pretraining data is out of reach, the model's own samples are the
  closest stand-in for the distribution continued pretraining should not forget, and they never run
  out: a small packaged text replayed at 25 % over hundreds of steps is seen many times over, which
  invites memorising it instead of keeping general ability.

A run samples no more than it will replay: ``self_sample_budget`` caps ``train.replay_tokens`` at the
replay rows the run's steps will draw (with headroom), so a 200-step demo samples ~31k tokens, not 60k.

Synthesis happens once per model, prompts, seed and budget: the text is cached in
``<cache>/replay/<key>.json`` (``LANGBUILD_CACHE``, default ``~/.cache/langbuild``), written atomically,
so a second project, a resumed run or a re-run after a changed learning rate costs nothing.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError, one_line
from ..core.hashing import hash_json
from ..core.progress import progress
from ..corpus.hub_source import SYNTAX as HUB_SYNTAX
from ..corpus.hub_source import is_hub_spec
from ..corpus.sources import ReadCounts, ReadOptions, Source, Unit, file_format, read_unit, source_files
from ..models.loading import cache_dir, fingerprint_candidates, load_model, load_tokenizer
from ..packaged.reference_texts import PACKAGED_TEXTS, read_text_lines
from ..text.words import first_words
from .precision import cast_parameters

SETTING = "train.replay_text"
SELF = "self"  # the value of train.replay_text that asks for self-synthesised replay

# A dataset's size is judged in characters before it is tokenised; ~4 characters a token is typical
# of English with a 32k-50k vocabulary. Only an estimate: it caps reading, the tokenizer counts.
CHARS_PER_TOKEN = 4

# Sampling of self-synthesised replay. Temperature 1 with nucleus 0.95 draws from the model's own
# distribution minus its unreliable tail: greedy or low-temperature text would replay a narrow,
# repetitive slice of what the model knows, while the raw tail adds noise it never really produced.
TEMPERATURE = 1.0
TOP_P = 0.95
# Each prompt line contributes its first few words: enough to set topic and register, few enough
# that what follows is the model's own text rather than a paraphrase of the prompt file.
PROMPT_WORDS = 4
# Generation cost is the price of self replay: batches keep a GPU (or the CPU's matrix units) busy.
BATCH_PROMPTS = 16
MAX_NEW_TOKENS = 128
CACHE_FORMAT = 2  # bump when the cached text would differ for the same key (2: a short last batch)
# Replay rows are drawn at random (each row with probability replay_fraction), so a run may draw a
# few more than the expected number; sampling 20 % more keeps each drawn row fresh text in most runs.
DRAW_HEADROOM = 1.2


def self_sample_budget(token_budget: int, steps: int, rows_per_step: int, fraction: float, seq_len: int) -> int:
    """How many tokens to sample for ``self`` replay: ``train.replay_tokens`` at most, and no more than
    the run's replay rows will use (``steps * rows_per_step * fraction`` rows of ``seq_len`` tokens, with
    DRAW_HEADROOM): sampling is the slow part of self replay, and text no row reads is time wasted."""
    import math

    drawn_rows = math.ceil(steps * rows_per_step * fraction * DRAW_HEADROOM)
    return max(1, min(token_budget, drawn_rows * seq_len))


# --- replay from a text or a dataset ------------------------------------------------------------------


# Replay sources are read forgivingly: a malformed line or a stray bad byte costs one document of
# replay, not the training run. Only the "text" field is read (corpus.text_field is the corpus's).
_READ_OPTIONS = ReadOptions(on_bad_record="skip", on_bad_encoding="replace", setting=SETTING,
                            text_field_hint=f"{SETTING} datasets must hold their text in a 'text' field")


def replay_source_files(spec: str, root: Path) -> list[tuple[str, str]]:
    """(kind, location) pairs a replay source other than ``self`` or a packaged text names."""
    if not is_hub_spec(spec) and not spec.startswith("package:") and not any(ch in spec for ch in "*?["):
        path = Path(spec).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.exists():
            raise LangbuildError(
                f"{SETTING} = '{spec}' is not found at {path}: name a file, a datasets folder, {HUB_SYNTAX}, "
                f"'{SELF}' or a packaged text ({', '.join(PACKAGED_TEXTS)})"
            )
    return source_files(spec, root, SETTING)


def _units(spec: str, root: Path) -> Iterator[Unit]:
    source = Source(spec, "replay")
    for index, (kind, location) in enumerate(replay_source_files(spec, root)):
        if kind == "file":
            fmt, compression = file_format(Path(location))
            yield Unit(index, source, fmt, location, compression)
        else:
            yield Unit(index, source, kind, location)


def _source_texts(spec: str, root: Path) -> Iterator[str]:
    if spec in PACKAGED_TEXTS:
        yield from read_text_lines(spec, root, SETTING)
        return
    try:
        for unit in _units(spec, root):
            for record in read_unit(unit, _READ_OPTIONS, ReadCounts()):
                yield record.text
    except LangbuildError as err:
        message = one_line(err)
        raise LangbuildError(message if SETTING in message else f"{SETTING} = '{spec}': {message}") from None


def read_replay_text(spec: str, root: Path, token_budget: int) -> Iterator[str]:
    """The documents of a packaged text, file or dataset, stripped, empty ones dropped, until they hold
    about ``token_budget`` tokens (``CHARS_PER_TOKEN`` characters each; the last one is cut to fit).

    Lazy: nothing is opened until the first document is asked for, and reading stops at the budget."""
    remaining = token_budget * CHARS_PER_TOKEN
    produced = False
    for text in _source_texts(spec, root):
        text = text.strip().lstrip("\ufeff")  # a byte-order mark is not text to replay
        if not text:
            continue
        produced = True
        yield text[:remaining]
        remaining -= len(text)
        if remaining <= 0:
            return
    if not produced:
        raise LangbuildError(f"{SETTING} = '{spec}' holds no text: choose another source or set train.replay_fraction = 0")


# --- self-synthesised replay ----------------------------------------------------------------------


@dataclass(frozen=True)
class SynthesisedReplay:
    documents: list[str]
    tokens: int  # sampled tokens, counted by the base model's tokenizer (prompt words not included)
    seconds: float  # generation time when it was made (the same when read from the cache)
    cache_file: Path
    from_cache: bool


def prompt_openings(lines: list[str], words: int = PROMPT_WORDS) -> list[str]:
    """The first ``words`` words of each non-empty line; [""] (start from BOS alone) when there are none."""
    openings = [first_words(line, words) for line in lines if line.strip()]
    return openings or [""]


def model_identity(model_path: Path) -> Any:
    """What identifies a model folder without hashing gigabytes: its files' names, sizes and times."""
    return next(iter(fingerprint_candidates([str(Path(model_path).resolve())], Path("/")).values()))


def _library_versions() -> dict[str, str]:
    import torch
    import transformers

    # Kernels and sampling code can change between releases; a cached text stays the text this code makes.
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def _generation_precision() -> str:
    """bf16 where this machine runs it faster (train.precision = auto's rule), else fp32: sampling is the
    whole cost of self replay, and its text needs no more precision than training computes with."""
    from .precision import resolve_precision

    return resolve_precision("auto").name


def cache_key(model_path: Path, openings: list[str], seed: int, token_budget: int) -> str:
    import torch

    return hash_json({
        "format": CACHE_FORMAT, "model": model_identity(model_path), "prompts": hash_json(openings), "seed": seed,
        "budget": token_budget, "dtype": _generation_precision(), "device": "cuda" if torch.cuda.is_available() else "cpu",
        "sampling": {"temperature": TEMPERATURE, "top_p": TOP_P, "prompt_words": PROMPT_WORDS,
                     "batch": BATCH_PROMPTS, "max_new_tokens": MAX_NEW_TOKENS},
        **_library_versions(),
    })


def _read_cache(path: Path) -> SynthesisedReplay | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return SynthesisedReplay(list(data["documents"]), int(data["tokens"]), float(data["seconds"]), path, True)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or edited by hand: made again


def synthesise_replay(model_path: Path, prompt_lines: list[str], token_budget: int, seed: int,
                      trust_remote_code: bool = False, console=None) -> SynthesisedReplay:
    """Self-synthesised replay (Huang et al. 2024, "Mitigating Catastrophic Forgetting in Large Language
    Models with Self-Synthesized Rehearsal"): up to ``token_budget`` tokens sampled from the model in
    ``model_path``, continuing the opening words of ``prompt_lines`` (or BOS alone when empty).

    The same model, prompts, seed and budget give byte-identical text on a given machine; the text is
    made once and then read from the cache."""
    openings = prompt_openings(prompt_lines)
    path = cache_dir() / "replay" / f"{cache_key(model_path, openings, seed, token_budget)}.json"
    cached = _read_cache(path)
    if cached is not None:
        if console is not None:
            console.print(f"  replay: {cached.tokens:,} self-synthesised tokens from the cache ({path.name})")
        return cached
    # Minutes on a CPU: a bar with an ETA on a terminal, a line every tenth of the way in a log.
    with progress(console, "replay: sampling from the base model", token_budget, "tokens") as bar:
        def on_batch(total: int) -> None:
            bar.advance(min(total, token_budget) - bar.done)

        documents, tokens, seconds = _generate(model_path, openings, token_budget, seed, trust_remote_code, on_batch)
    if not documents:
        raise LangbuildError(f"the base model ends every sample at once, so {SETTING} = '{SELF}' has nothing to replay: "
                             "name a text or dataset instead")
    atomic_write_json(path, {"documents": documents, "tokens": tokens, "seconds": round(seconds, 3),
                             "model": str(model_path), "seed": seed, "budget": token_budget})
    if console is not None:
        console.print(f"  replay: sampled {tokens:,} tokens of source-language text from the base model "
                      f"in {seconds:.1f} s ({len(documents):,} documents, cached)")
    return SynthesisedReplay(documents, tokens, seconds, path, False)


def _generate(model_path: Path, openings: list[str], token_budget: int, seed: int, trust_remote_code: bool,
              on_batch: Callable[[int], None] = lambda total: None) -> tuple[list[str], int, float]:
    import torch

    started = time.perf_counter()
    tokenizer = load_tokenizer(model_path, trust_remote_code)
    model = cast_parameters(load_model(model_path, trust_remote_code), _generation_precision())
    documents: list[str] = []
    total = 0
    devices = [torch.cuda.current_device()] if model.device.type == "cuda" else []
    # Sampling draws from torch's global generator: forking it keeps the caller's random state as it was.
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(seed)
        next_openings = itertools.cycle(openings)
        while total < token_budget:
            batch, new_tokens = _next_batch(next_openings, token_budget - total)
            rows = sample_batch(model, tokenizer, batch, new_tokens)
            if not any(sampled for _, sampled in rows):
                break
            for prompt_ids, sampled in rows:
                sampled = sampled[: token_budget - total]
                total += len(sampled)
                text = tokenizer.decode(prompt_ids + sampled, skip_special_tokens=True).strip()
                if text and sampled:
                    documents.append(text)
            on_batch(total)
    return documents, total, time.perf_counter() - started


def _next_batch(openings: Iterator[str], remaining: int) -> tuple[list[str], int]:
    """The next openings to sample from and how many tokens each may add: BATCH_PROMPTS openings of
    MAX_NEW_TOKENS, fewer and shorter when fewer tokens remain. Why: a batch decodes until its longest
    row ends, so the last 64 tokens of a budget sampled in a full batch would decode 16 rows to keep one."""
    new_tokens = min(MAX_NEW_TOKENS, remaining)
    return list(itertools.islice(openings, min(BATCH_PROMPTS, math.ceil(remaining / new_tokens)))), new_tokens


def _start_id(tokenizer) -> int | None:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def sample_batch(model, tokenizer, openings: list[str], max_new_tokens: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, sampled ids up to the first EOS) per opening; prompts left-padded into one batch.

    Every prompt starts with BOS (EOS where there is none), as a document does in pretraining."""
    import torch
    from transformers import GenerationConfig

    start = _start_id(tokenizer)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos if eos is not None else 0)
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] if text else [] for text in openings]
    starts = [[start] if start is not None else [] for _ in prompts]
    full = [s + p for s, p in zip(starts, prompts)]
    width = max(len(ids) for ids in full)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in full], device=model.device)
    attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in full], device=model.device)
    config = GenerationConfig(do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, top_k=0, repetition_penalty=1.0,
                              max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos)
    output = model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
    rows = []
    for prompt_ids, row in zip(prompts, output[:, width:].tolist()):
        if eos is not None and eos in row:
            row = row[: row.index(eos)]
        rows.append((prompt_ids, row))
    return rows
