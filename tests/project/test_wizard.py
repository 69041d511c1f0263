"""The wizard of ``langbuild init``: its pieces (language names, budgets, corpus preview, which models fit)
and the whole of it through a real pseudo-terminal, as a person types."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from langbuild.core.config import CONFIG_NAME, defaults
from langbuild.core.errors import LangbuildError
from langbuild.core.languages import MAX_NAME_MATCHES, language_choices
from langbuild.corpus.preview import PREVIEW_DOCUMENTS, preview_corpus
from langbuild.models.budget import training_memory
from langbuild.models.candidates import candidate_fit, recommend
from langbuild.models.gguf_header import read_gguf_header
from langbuild.models.selection import Plan, memory_estimate
from langbuild.project.wizard import from_here_or_project
from langbuild.training.run_budget import (
    Budget,
    ReplaySettings,
    Speed,
    default_speed,
    estimate_run,
    parse_budget,
    sampling_speed,
    steps_for_budget,
)

REPO = Path(__file__).resolve().parents[2]
CHICHEWA = ["Pachiyambi Mulungu adalenga kumwamba ndi dziko lapansi.", "Dziko lapansi linali losakonzeka."]


# --- language --------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed, codes", [
    ("chichewa", ["nya"]), ("Chichewa", ["nya"]), ("nya", ["nya"]), ("ny", ["ny"]), ("nya_Latn", ["nya_Latn"]),
    ("swahili", ["swa", "swh"]),  # the macrolanguage and the individual language: a choice
    ("greek", ["ell"]),  # through the aliases task families use
    ("ga", ["ga", "gaa"]),  # Irish's code, and the name of Ga
])
def test_a_language_is_found_by_code_or_name(typed, codes):
    assert [choice.code for choice in language_choices(typed)] == codes


def test_an_unknown_name_matches_nothing_and_a_vague_one_too_much():
    assert language_choices("chichewaa") == []
    assert len(language_choices("quech")) > MAX_NAME_MATCHES


# --- budget ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed, budget", [
    ("2h", Budget("time", 7200)), ("30m", Budget("time", 1800)), ("1h30m", Budget("time", 5400)),
    ("90 min", Budget("time", 5400)), ("2 hours", Budget("time", 7200)), ("5M tokens", Budget("tokens", 5e6)),
    ("200k tokens", Budget("tokens", 2e5)), ("1,000,000 tokens", Budget("tokens", 1e6)),
    ("300 steps", Budget("steps", 300)), ("300", Budget("steps", 300)),
])
def test_budgets_are_parsed_as_people_write_them(typed, budget):
    assert parse_budget(typed) == budget


@pytest.mark.parametrize("typed", ["", "lots", "0", "2x", "-5 steps", "5 tok ens"])
def test_a_wrong_budget_says_what_to_type(typed):
    with pytest.raises(LangbuildError, match="budget"):
        parse_budget(typed)


def test_a_budget_becomes_steps():
    speed = Speed(1000.0, "test")
    assert steps_for_budget(parse_budget("1h"), 1024, speed) == 3600 * 1000 // 1024
    assert steps_for_budget(parse_budget("5M tokens"), 1024, speed) == 5_000_000 // 1024
    assert steps_for_budget(parse_budget("12 steps"), 1024, speed) == 12
    assert steps_for_budget(parse_budget("1s"), 1024, speed) == 1  # never zero steps


NO_REPLAY = ReplaySettings(fraction=0.0, self_sampled=False, kl=False, token_cap=60000, seq_len=256)
DEMO_REPLAY = ReplaySettings(fraction=0.125, self_sampled=True, kl=True, token_cap=60000, seq_len=256)


def test_without_replay_the_estimate_is_plain_training():
    speed, sampling = Speed(1000.0, "test"), Speed(100.0, "test")
    run = estimate_run(parse_budget("1h"), 1024, speed, NO_REPLAY, sampling)
    assert run.steps == 3600 * 1000 // 1024 and run.sampled_tokens == 0 and run.sampling_seconds == 0
    assert run.training_seconds == pytest.approx(run.steps * 1024 / 1000)


def test_self_replay_and_its_kl_pass_are_counted_in_the_run_time():
    speed, sampling = Speed(1000.0, "test"), Speed(100.0, "test")
    # The demo: 200 steps of 4 x 256 tokens sample 1.2 x 200 x 4 x 1/8 = 120 rows of 256 tokens.
    run = estimate_run(parse_budget("200 steps"), 1024, speed, DEMO_REPLAY, sampling)
    assert run.sampled_tokens == 120 * 256 and run.sampling_seconds == pytest.approx(307.2)
    assert run.training_seconds == pytest.approx(200 * 1024 / 1000 * (1 + 0.125 * 1.8))  # the KL, as the demo measured it
    without_kl = estimate_run(parse_budget("200 steps"), 1024, speed, dataclasses.replace(DEMO_REPLAY, kl=False), sampling)
    assert without_kl.training_seconds == pytest.approx(200 * 1024 / 1000)
    # A time budget pays for sampling and the KL pass: the whole run fits in it.
    timed = estimate_run(parse_budget("1h"), 1024, speed, DEMO_REPLAY, sampling)
    assert timed.steps < run.steps * 3600 / (200 * 1024 / 1000)
    assert 3600 - 5 <= timed.training_seconds + timed.sampling_seconds <= 3600


def test_sampling_speed_scales_with_the_model_and_the_device():
    small, large = sampling_speed(100_000_000, 0, 2), sampling_speed(200_000_000, 0, 2)
    assert small.tokens_per_second == pytest.approx(2 * large.tokens_per_second)
    assert sampling_speed(135_000_000, 0, 2).tokens_per_second < default_speed(135_000_000, 0, 2).tokens_per_second
    assert "not measured" in sampling_speed(135_000_000, 1, 2).source


def test_the_default_speed_scales_with_the_model_and_the_device():
    small, large = default_speed(100_000_000, 0, 2), default_speed(200_000_000, 0, 2)
    assert small.tokens_per_second == pytest.approx(2 * large.tokens_per_second)
    assert default_speed(100_000_000, 1, 2).tokens_per_second > 100 * small.tokens_per_second
    assert "not measured" in small.source


# --- corpus preview --------------------------------------------------------------------------------


def test_the_preview_counts_files_documents_and_scripts(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("\n".join(CHICHEWA) + "\n", encoding="utf-8")
    (tmp_path / "texts" / "b.jsonl").write_text('{"text": "Ουρανός"}\n', encoding="utf-8")
    preview = preview_corpus(["texts", "hf:owner/data"], tmp_path)
    assert (preview.files, preview.documents, preview.documents_capped) == (2, 3, False)
    assert preview.bytes == sum(p.stat().st_size for p in (tmp_path / "texts").iterdir())
    assert preview.sample == CHICHEWA[0]
    assert [name for name, _ in preview.script_shares()] == ["LATIN", "GREEK"]
    assert preview.remote == ["hf:owner/data"]


def test_the_preview_stops_early_on_a_large_corpus(tmp_path):
    (tmp_path / "big.txt").write_text("mawu\n" * (PREVIEW_DOCUMENTS + 10), encoding="utf-8")
    preview = preview_corpus(["big.txt"], tmp_path)
    assert preview.documents == PREVIEW_DOCUMENTS and preview.documents_capped


@pytest.mark.parametrize("spec, message", [("missing.txt", "does not exist"), ("*.nothing", "matches no file"),
                                           ("package:nope", "no packaged corpus")])
def test_the_preview_refuses_a_source_that_names_nothing(tmp_path, spec, message):
    with pytest.raises(LangbuildError, match=message):
        preview_corpus([spec], tmp_path)


def test_a_path_found_only_from_the_current_folder_is_written_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.txt").write_text("x\n")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "inside.txt").write_text("x\n")
    exists = lambda spec, root: (root / spec).exists()  # noqa: E731
    assert from_here_or_project("here.txt", Path("proj"), exists) == str(tmp_path / "here.txt")
    assert from_here_or_project("inside.txt", Path("proj"), exists) == "inside.txt"
    assert from_here_or_project("nowhere.txt", Path("proj"), exists) == "nowhere.txt"
    assert from_here_or_project("hf:a/b", Path("proj"), exists) == "hf:a/b"


# --- models that fit -------------------------------------------------------------------------------


def test_the_gguf_header_agrees_with_the_gguf_library():
    from gguf import GGUFReader

    from langbuild.models.loading import PACKAGED

    path = PACKAGED["smollm2-135m"].header_file()
    ours, reference = read_gguf_header(path), GGUFReader(path)
    assert ours.tensors == tuple(tensor.name for tensor in reference.tensors)
    for key, field in reference.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        assert ours.metadata[key] == (len(value) if isinstance(value, list) else pytest.approx(value)), key


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_the_fit_from_a_config_is_selects_estimate_of_the_loaded_model(tiny_llama):
    from langbuild.models.loading import load_model

    plan = Plan.from_config(defaults())
    fit = candidate_fit(str(tiny_llama), Path("."), plan)
    model = load_model(tiny_llama)
    assert fit.kind == "local"
    assert fit.memory_bytes == memory_estimate(model, plan)["memory_bytes"]["total"]
    assert fit.memory_bytes == training_memory(model, plan.batch_size, plan.seq_len, plan.precision, plan.recipes[0])["total"]
    assert fit.parameters == sum(p.numel() for p in model.parameters())


def test_packaged_models_are_sized_without_their_weights_and_the_largest_fitting_one_is_recommended():
    plan = Plan.from_config(defaults())
    fits = [candidate_fit(name, Path("."), plan) for name in ("smollm2-135m", "gemma3-270m")]
    assert [fit.parameters // 10**6 for fit in fits] == [134, 268]  # published: 135M and 268M parameters
    assert recommend(fits) == "gemma3-270m"
    small_budget = dataclasses.replace(plan, budget=(fits[0].memory_bytes + fits[1].memory_bytes) // 2)
    assert recommend([candidate_fit(f.name, Path("."), small_budget) for f in fits]) == "smollm2-135m"
    unknown = candidate_fit("nobody/nothing", Path("."), plan)
    assert unknown.fits is None and "hub" in unknown.note


# --- the whole wizard, through a pseudo-terminal ------------------------------------------------------


def _environment(tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "LANGBUILD_DEBUG"}
    # A plain terminal (no colour codes to match), wide enough that no answer wraps; no network; the
    # bf16 choice fixed, so the run takes no measurement.
    env.update({"PYTHONPATH": str(REPO), "TERM": "dumb", "COLUMNS": "200", "HF_HUB_OFFLINE": "1",
                "LANGBUILD_BF16_SPEEDUP": "1.0"})
    return env


def test_the_wizard_re_asks_wrong_answers_and_writes_what_the_flags_write(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    corpus = tmp_path / "nya.txt"
    corpus.write_text("\n".join(CHICHEWA) + "\n", encoding="utf-8")
    child = pexpect.spawn(sys.executable, ["-m", "langbuild", "init", "asked"], cwd=str(tmp_path),
                          env=_environment(tmp_path), encoding="utf-8", timeout=180, dimensions=(50, 200))
    child.expect("Target language")
    child.sendline("chichewaa")
    child.expect("no language called 'chichewaa'")
    child.expect("Target language")
    child.sendline("chichewa")
    child.expect("nya: Chichewa")
    child.expect("Corpus:")
    child.sendline("missing.txt")
    child.expect("'missing.txt' does not exist: type it again")
    child.expect("Corpus:")
    child.sendline("nya.txt")  # found from the current folder, not the project's: written absolute
    child.expect("2 documents")
    child.expect("Candidate base models")
    child.sendline("smollm2-135m")
    child.expect("Training budget")
    child.sendline("soon")
    child.expect("'soon' is not a budget")
    child.expect("Training budget")
    child.sendline("300 steps")
    child.expect("train.max_steps = 300")
    child.expect("self replay: sampling")  # the default replay_text = self: its sampling is in the estimate
    child.expect(r"Run now\? \[Y/n\]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    flags = subprocess.run([sys.executable, "-m", "langbuild", "init", "flagged", "--language", "nya", "--corpus", str(corpus),
                            "--base-model", "smollm2-135m", "--set", "train.max_steps=300", "--yes"],
                           cwd=tmp_path, env=_environment(tmp_path), capture_output=True, text=True, timeout=120)
    assert flags.returncode == 0, flags.stderr
    written = (tmp_path / "asked" / CONFIG_NAME).read_text(encoding="utf-8")
    assert written == (tmp_path / "flagged" / CONFIG_NAME).read_text(encoding="utf-8")
    assert not (tmp_path / "asked" / "langbuild.lock").exists()  # "n": nothing ran


def test_the_wizard_refuses_an_existing_project_before_asking_anything(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / CONFIG_NAME).write_text("", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "langbuild", "init", "p", "--interactive"], cwd=tmp_path,
                            env=_environment(tmp_path), input="nya\n", capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "already holds a langbuild project" in result.stderr
    assert "Target language" not in result.stdout
