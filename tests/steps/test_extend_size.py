"""extend.num_new_tokens = "auto": the size rule, never worse than not extending, min_frequency, the
warning for a fixed size that starts worse, and a pipeline that runs on when nothing is added."""

from __future__ import annotations

import io
import json
import random

import pytest
from rich.console import Console
from transformers import AutoTokenizer

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.extension import byte_level_to_text, continue_bpe, corpus_words
from langbuild.extension import size as extend_size
from langbuild.extension.size import candidate_sizes, choose_size
from tests.tiny import chichewa_split, make_tiny_project, read_json

QUIET = Console(quiet=True)
TINY_CORPUS = 60  # verses (~6 kB): a corpus on which a taught model gains nothing from new tokens


def _choose(curve: list[tuple[int, float, float]], **rule) -> tuple[int, str, list[int]]:
    """choose_size over (size, tokens per word, zero-shot bpb) points; also the sizes it scored."""
    scored = []

    def score(size):
        scored.append(size)
        return next(bpb for s, _, bpb in curve if s == size)

    size, reason = choose_size({s: t for s, t, _ in curve}, score, **rule)
    return size, reason, scored


def _reference(curve, tolerance=0.03, min_gain=0.02, margin=0.01) -> int:
    """The rule written plainly, every size scored."""
    base_tpw, base_bpb = curve[0][1], curve[0][2]
    admissible = [(s, t) for s, t, b in curve if s > 0 and b <= base_bpb * (1 - margin)]
    if not admissible or min(t for _, t in admissible) > base_tpw * (1 - min_gain):
        return 0
    best = min(t for _, t in admissible)
    return min(s for s, t in admissible if t <= best * (1 + tolerance))


def _recording_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=400, color_system=None), buffer


# --- the rule ---------------------------------------------------------------------------------------


def test_candidate_sizes_start_at_zero_and_end_at_what_was_learned():
    assert candidate_sizes(0) == [0]
    assert candidate_sizes(300) == [0, 125, 250, 300]
    assert candidate_sizes(16000)[-3:] == [4000, 8000, 16000]


def test_the_best_compression_is_not_chosen_when_it_starts_worse_than_the_base():
    curve = [(0, 3.0, 2.00), (500, 2.4, 1.95), (1000, 2.2, 1.97), (2000, 2.1, 1.99), (4000, 1.9, 2.05)]
    size, reason, _ = _choose(curve)
    # 4000 compresses most but scores above 2.00; 2000 scores below it, yet within the 1 % margin.
    assert size == 1000
    assert "1% or more below the base's" in reason
    assert _choose(curve, margin=0.0)[0] == 2000


def test_the_smallest_size_within_the_tolerance_of_the_best_is_chosen_scoring_only_what_it_needs():
    curve = [(0, 3.0, 2.0), (500, 2.3, 1.9), (1000, 2.05, 1.9), (2000, 2.0, 1.9)]
    size, _, scored = _choose(curve, tolerance=0.03)
    assert size == 1000  # 2.05 is within 3 % of 2.0
    assert 500 not in scored  # outside the band: its score cannot change the choice
    assert _choose(curve, tolerance=0.0)[0] == 2000


def test_nothing_is_added_when_every_size_is_worse_or_none_was_learned():
    size, reason, _ = _choose([(0, 3.0, 2.0), (125, 2.8, 2.1), (250, 2.7, 2.2)])
    assert size == 0 and reason.startswith("every size scored worse than the base model")
    size, reason, _ = _choose([(0, 3.0, 2.0), (125, 2.8, 1.99)])
    assert size == 0 and reason.startswith("every size scored no more than 1% better")
    size, reason, _ = _choose([(0, 3.0, 2.0)])
    assert size == 0 and "often enough" in reason
    # Not worse, but no real compression either: rows for nothing.
    size, reason, _ = _choose([(0, 3.0, 2.0), (125, 2.99, 1.90)])
    assert size == 0 and "cuts tokens per word by 2%" in reason


def test_no_curve_ever_yields_a_size_worse_than_the_base_and_lazy_scoring_changes_nothing():
    rng = random.Random(0)
    for _ in range(1000):
        sizes = [0, *sorted(rng.sample([125, 250, 500, 1000, 2000, 4000, 8000, 16000], rng.randint(1, 8)))]
        tokens_per_word = sorted((rng.uniform(1.2, 3.5) for _ in sizes), reverse=True)
        if rng.random() < 0.3:
            rng.shuffle(tokens_per_word)  # not every tokenizer family need be monotone
        curve = [(s, t, rng.uniform(1.5, 2.5)) for s, t in zip(sizes, tokens_per_word)]
        size, _, _ = _choose(curve)
        assert size == _reference(curve)
        assert dict((s, b) for s, _, b in curve)[size] <= curve[0][2] * (0.99 if size else 1)


# --- min_frequency ---------------------------------------------------------------------------------


def test_min_frequency_keeps_only_tokens_seen_often_enough(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2-bytelevel"])
    backend = tokenizer.backend_tokenizer
    spec = json.loads(backend.to_str())
    train = chichewa_split(1)[0][:TINY_CORPUS]
    loose = continue_bpe(backend, spec, train, 10_000, 1, None)
    strict = continue_bpe(backend, spec, train, 10_000, 5, None)
    # Merges are learned in falling train count, so a stricter threshold cuts the same list shorter.
    assert 0 < len(strict.tokens) < len(loose.tokens) / 3
    assert strict.tokens == loose.tokens[: len(strict.tokens)]
    words = corpus_words(backend, train)
    for token in strict.tokens:
        # The pair behind each token occurred at least 5 times, so its text did too.
        assert sum(count * word.count(token) for word, count in words.items()) >= 5, byte_level_to_text(token)


# --- real runs ---------------------------------------------------------------------------------------


def test_auto_never_picks_a_size_that_starts_worse_than_the_base(tmp_path, taught_model, monkeypatch):
    # A band as wide as the curve: the rule then walks up from the smallest size, past those that start
    # worse than the base (on this model and corpus the small ones do), to the first one that does not.
    monkeypatch.setattr(extend_size, "TOKENS_PER_WORD_TOLERANCE", 10.0)
    root = make_tiny_project(tmp_path, taught_model, train_books=1, **{"extend.num_new_tokens": "auto"})
    pipeline.run(Project(root), QUIET, until="extend")
    metrics = read_json(root / "extend/metrics.json")
    curve = {p["new_tokens"]: p for p in metrics["gain_curve"]}
    base = curve[0]["zero_shot_bits_per_byte"]
    scored = {size: p["zero_shot_bits_per_byte"] for size, p in curve.items() if p["zero_shot_bits_per_byte"] is not None}
    assert any(bpb > base for bpb in scored.values())  # the case is a real one: some sizes start worse
    rechosen, _ = choose_size({size: p["tokens_per_word"] for size, p in curve.items()}, scored.__getitem__)
    assert metrics["added_tokens"] == metrics["auto_size"]["chosen"] == rechosen > 0
    assert scored[metrics["added_tokens"]] <= base
    # The zero-shot diagnostics score the same sample with the same rows: the numbers auto chose by.
    target = metrics["zero_shot_bits_per_byte"]["target"]
    assert target["extended"] == pytest.approx(curve[metrics["added_tokens"]]["zero_shot_bits_per_byte"], rel=1e-6)
    assert target["base"] == pytest.approx(base, rel=1e-6)


def test_on_a_tiny_corpus_auto_adds_nothing_and_the_pipeline_runs_on_the_base_tokenizer(tmp_path, taught_model):
    root = make_tiny_project(tmp_path, taught_model, train_books=1, train_verses=TINY_CORPUS,
                             **{"extend.num_new_tokens": "auto", "train.stages": ["embeddings", "full"],
                                "train.embedding_steps": 2})
    console, printed = _recording_console()
    pipeline.run(Project(root), console)
    output = printed.getvalue()
    assert "extension skipped: " in output
    assert "embeddings stage skipped: extend added no tokens" in output
    metrics = read_json(root / "extend/metrics.json")
    assert metrics["added_tokens"] == 0 and read_json(root / "extend/new_tokens.json") == []
    assert len(metrics["gain_curve"]) > 1  # sizes were scored, none kept
    base, extended = AutoTokenizer.from_pretrained(taught_model), AutoTokenizer.from_pretrained(root / "extend/model")
    assert extended.get_vocab() == base.get_vocab()
    assert metrics["embedding_rows"]["extended"] == metrics["embedding_rows"]["base"]
    train = read_json(root / "train/summary.json")
    assert [stage["name"] for stage in train["stages"]] == ["full"]
    assert "not extended" in (root / "report/report.md").read_text()
    assert [s["state"] for s in pipeline.status(Project(root))] == ["done"] * len(pipeline.STEPS)


def test_embeddings_only_training_with_nothing_added_is_refused_in_one_line(tmp_path, taught_model):
    from langbuild.core.errors import LangbuildError

    root = make_tiny_project(tmp_path, taught_model, train_books=1, train_verses=TINY_CORPUS,
                             **{"extend.num_new_tokens": 0, "train.stages": ["embeddings"]})
    with pytest.raises(LangbuildError, match=r"trains only the rows extend added, and it added none"):
        pipeline.run(Project(root), QUIET, until="train")


def test_a_fixed_size_that_starts_worse_than_the_base_is_warned_about(tmp_path, taught_model):
    root = make_tiny_project(tmp_path, taught_model, train_books=1, train_verses=TINY_CORPUS,
                             **{"extend.num_new_tokens": 250})
    console, printed = _recording_console()
    pipeline.run(Project(root), console, until="extend")
    target = read_json(root / "extend/metrics.json")["zero_shot_bits_per_byte"]["target"]
    assert target["extended"] > target["base"]
    warning = [line for line in printed.getvalue().splitlines() if "warning:" in line]
    assert len(warning) == 1 and f"{target['extended']:.3f}" in warning[0] and f"{target['base']:.3f}" in warning[0]


def test_the_report_shows_the_scored_curve_and_the_reason():
    from langbuild.reporting.page import gain_curve_lines

    extend = {"gain_curve": [{"new_tokens": 0, "tokens_per_word": 3.0, "zero_shot_bits_per_byte": 2.0},
                             {"new_tokens": 500, "tokens_per_word": 2.5, "zero_shot_bits_per_byte": None},
                             {"new_tokens": 1000, "tokens_per_word": 2.2, "zero_shot_bits_per_byte": 1.9}],
              "auto_size": {"chosen": 1000, "reason": "the smallest size within 3% of the best"}}
    (line,) = gain_curve_lines(extend)
    assert "0 → 3.000 / 2.000" in line and "500 → 2.500 / not needed" in line and "Chose 1,000: the smallest" in line
