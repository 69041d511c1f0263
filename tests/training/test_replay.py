"""Replay text against forgetting: self-synthesised by the base model (cached, deterministic, within
budget), read from files and datasets without reading more than the budget, fingerprinted, and every
bad source one line naming train.replay_text."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from rich.console import Console

from langbuild import pipeline
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.corpus import sources
from langbuild.models.loading import load_tokenizer
from langbuild.training import replay
from langbuild.training.replay import CHARS_PER_TOKEN, prompt_openings, read_replay_text, synthesise_replay
from tests.tiny import english_lines, make_tiny_project, write_lines

PROMPTS = english_lines()[:6]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch, tmp_path):
    """Short samples in small batches keep generation with a random tiny model to a second or two;
    the cache goes to a temporary folder, never the user's."""
    monkeypatch.setattr(replay, "BATCH_PROMPTS", 4)
    monkeypatch.setattr(replay, "MAX_NEW_TOKENS", 8)
    monkeypatch.setenv("LANGBUILD_CACHE", str(tmp_path / "cache"))


def _text(result) -> bytes:
    return "\n".join(result.documents).encode("utf-8")


# --- self-synthesised replay ----------------------------------------------------------------------


def test_self_replay_is_deterministic_within_budget_and_read_from_the_cache(tiny_models, monkeypatch):
    model = tiny_models["llama-spm"]
    first = synthesise_replay(model, PROMPTS, 50, seed=3)
    assert first.documents and all(first.documents) and not first.from_cache
    assert 0 < first.tokens <= 50  # several batches of 4 x 8 tokens, the last one cut to the budget
    assert first.cache_file.is_file() and first.cache_file.parent.name == "replay"
    assert first.documents[0].startswith(" ".join(PROMPTS[0].split()[:replay.PROMPT_WORDS]))

    stamp = first.cache_file.stat().st_mtime_ns

    def no_model(*args, **kwargs):
        raise AssertionError("the model was asked again")

    generate = replay._generate
    monkeypatch.setattr(replay, "_generate", no_model)
    again = synthesise_replay(model, PROMPTS, 50, seed=3)
    assert again.from_cache and _text(again) == _text(first) and again.tokens == first.tokens
    assert first.cache_file.stat().st_mtime_ns == stamp
    monkeypatch.setattr(replay, "_generate", generate)

    first.cache_file.unlink()
    remade = synthesise_replay(model, PROMPTS, 50, seed=3)
    assert not remade.from_cache and _text(remade) == _text(first)  # byte-identical from the same seed
    assert _text(synthesise_replay(model, PROMPTS, 50, seed=4)) != _text(first)


def test_the_last_batch_decodes_only_the_rows_the_budget_needs():
    import itertools

    openings = itertools.cycle(["a", "b", "c", "d", "e"])  # BATCH_PROMPTS = 4, MAX_NEW_TOKENS = 8 here
    assert replay._next_batch(openings, 100) == (["a", "b", "c", "d"], 8)
    assert replay._next_batch(openings, 17) == (["e", "a", "b"], 8)  # 3 rows of 8 hold 17; the cycle goes on
    assert replay._next_batch(openings, 5) == (["c"], 5)


def test_self_replay_without_prompts_starts_from_the_start_token(tiny_models):
    # GPT-2's tokenizer has no pad token and BOS = EOS: the start token is also what ends a sample.
    result = synthesise_replay(tiny_models["gpt2-bytelevel"], [], 20, seed=0)
    assert result.documents and 0 < result.tokens <= 20
    assert prompt_openings([]) == [""] and prompt_openings(["  a b c d e f", ""]) == ["a b c d"]


def test_sampling_progress_is_plain_lines_with_an_eta_in_a_log(tiny_models):
    import io

    log = io.StringIO()
    synthesise_replay(tiny_models["gpt2-bytelevel"], PROMPTS, 40, seed=5, console=Console(file=log, width=200))
    lines = log.getvalue().splitlines()
    progress_lines = [line for line in lines if "replay: sampling from the base model:" in line]
    assert progress_lines and "ETA" in progress_lines[-1] and "/40 tokens" in progress_lines[-1]
    assert "cached" in lines[-1] and "\r" not in log.getvalue()


def test_self_replay_leaves_the_callers_random_state_alone(tiny_models):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    synthesise_replay(tiny_models["gpt2-bytelevel"], PROMPTS, 10, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_the_train_step_samples_replay_from_the_model_select_chose(tiny_models, tmp_path):
    from langbuild.steps import train

    root = make_tiny_project(tmp_path / "p", tiny_models["gpt2-bytelevel"])
    select = tmp_path / "select"
    select.mkdir()
    (select / "selection.json").write_text(json.dumps({"chosen": str(tiny_models["gpt2-bytelevel"])}))
    project = Project(root)
    project.config.values["train"].update(replay_text="self", replay_tokens=30)
    ctx = SimpleNamespace(config=project.config, project=project, console=Console(quiet=True),
                          output_of=lambda step: select)
    tokenizer = load_tokenizer(tiny_models["gpt2-bytelevel"])
    count = train.tokenise_replay(ctx, tokenizer, tmp_path / "replay.bin", self_budget=30)
    assert count > 0 and (tmp_path / "replay.bin").stat().st_size == 4 * count
    assert len(list((tmp_path / "cache" / "replay").glob("*.json"))) == 1


def test_self_replay_samples_no_more_than_the_run_will_draw():
    from langbuild.training.replay import DRAW_HEADROOM, self_sample_budget

    # The demo: 200 steps of 4 rows of 256 tokens, 12.5 % replay: 100 rows expected, 120 sampled.
    assert self_sample_budget(60_000, 200, 4, 0.125, 256) == round(100 * DRAW_HEADROOM) * 256 < 60_000
    assert self_sample_budget(60_000, 20_000, 64, 0.125, 256) == 60_000  # a long run: replay_tokens caps it
    assert self_sample_budget(60_000, 1, 1, 0.01, 32) == 32  # at least one row's worth


# --- replay read from files and datasets -----------------------------------------------------------


DOCS = [f"Document {i}: the quick brown fox jumps over the lazy dog." for i in range(200)]


def test_a_jsonl_file_as_replay_source_is_read_up_to_the_budget(tmp_path):
    lines = [json.dumps({"text": doc, "id": i}) for i, doc in enumerate(DOCS)] + ["not json"]
    write_lines(tmp_path / "english.jsonl", lines)
    assert list(read_replay_text("english.jsonl", tmp_path, 10**6)) == DOCS  # the bad line is skipped
    capped = list(read_replay_text("english.jsonl", tmp_path, 100))
    assert sum(len(doc) for doc in capped) == 100 * CHARS_PER_TOKEN and capped[:-1] == DOCS[: len(capped) - 1]


def test_a_datasets_folder_as_replay_source(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": DOCS[:20], "id": list(range(20))}).save_to_disk(str(tmp_path / "ds"))
    assert list(read_replay_text("ds", tmp_path, 10**6)) == DOCS[:20]


def test_a_hub_dataset_is_streamed_only_as_far_as_the_budget(tmp_path, monkeypatch):
    read = []

    def endless_hub(spec, options):
        while True:
            read.append(spec)
            yield sources.Record(f"row {len(read)} of an endless hub dataset")

    monkeypatch.setattr(sources, "_read_hub", endless_hub)
    documents = list(read_replay_text("hf:someone/english:train", tmp_path, 25))
    assert sum(len(doc) for doc in documents) == 25 * CHARS_PER_TOKEN and len(read) == len(documents) < 10
    assert read[0] == "hf:someone/english::train"  # the canonical spec


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("missing.txt", None, "not found"),
    ("binary.jsonl", b"\x00\x01\x02" * 100, "looks binary"),
    ("empty.txt", b"\n \n", "holds no text"),
    ("ds", "no-text-column", "'text' field"),
])
def test_an_unreadable_replay_source_is_one_line_naming_the_setting(tmp_path, name, content, fragment):
    if content == "no-text-column":
        import datasets

        datasets.Dataset.from_dict({"sentence": ["a b c"]}).save_to_disk(str(tmp_path / name))
    elif content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(LangbuildError) as info:
        list(read_replay_text(name, tmp_path, 100))
    message = str(info.value)
    assert "train.replay_text" in message and fragment in message and "\n" not in message
    assert "corpus.text_field" not in message


# --- fingerprints ----------------------------------------------------------------------------------


def test_replay_fingerprint_follows_what_decides_the_replay_data(tiny_models, tmp_path):
    root = make_tiny_project(tmp_path / "p", tiny_models["gpt2-bytelevel"])
    write_lines(root / "english.jsonl", [json.dumps({"text": doc}) for doc in DOCS])
    project = Project(root)
    train = project.config.values["train"]

    def inputs(**settings):
        train.update(settings)
        return pipeline._train_inputs(project)

    own = inputs(replay_text="self", replay_prompts="flores-eng-a", replay_tokens=100)
    assert "train.replay_prompts=flores-eng-a" in own and own["train.replay_tokens"] == 100
    assert inputs(replay_tokens=200) != own and inputs(replay_tokens=100, replay_prompts="") != own
    in_file = inputs(replay_text="english.jsonl")
    assert len(in_file["train.replay_text=english.jsonl"]) == 64  # the file's sha256, as for any text
    hub = {"id": "someone/english", "config": None, "split": "train", "revision": None, "data_dir": None, "data_files": []}
    assert inputs(replay_text="hf:someone/english") == {"train.replay_tokens": 100,
                                                        "train.replay_text=hf:someone/english": {"hf:someone/english::train": hub}}
    assert inputs(replay_text="hf:someone/english:en") != inputs(replay_text="hf:someone/english")  # a config
    assert inputs(replay_fraction=0.0) == {}
