"""lm-eval's built-in benchmarks proven offline, few-shot prompts, and decontamination against benchmarks.

A local copy of Belebele for Chichewa (invented items in its real schema, prepared by datasets' own
builder into the folder ``load_dataset`` reads with HF_HUB_OFFLINE set) lets the eval step run the
real ``belebele_nya_Latn`` task through lm-eval, and lets the corpus step drop the train document that
one of its passages copies. Few-shot is checked on the requests lm-eval sends to the model.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from langbuild import pipeline
from langbuild.core.project import Project
from langbuild.evaluation import harness
from langbuild.evaluation.benchmark_data import (
    builtin_names,
    cached_benchmark_texts,
    cached_copy,
    read_cached_rows,
    write_offline_copy,
)
from langbuild.evaluation.local_tasks import local_task, write_task_yaml
from langbuild.models.loading import load_model, load_tokenizer
from tests.tiny import chichewa_split, read_json, tiny_project_through

QUIET = Console(quiet=True)
TASK = "belebele_nya_Latn"


def _copied_train_verse() -> str:
    """A train-split verse of at least 13 words, which one invented passage quotes word for word."""
    train, _ = chichewa_split()
    return next(line for line in train if len(line.split()) >= 20)


def belebele_rows() -> list[dict]:
    """Eight invented items with Belebele's fields; the answer cycles through the four positions."""
    answers = ["madzi", "nyumba", "mbuzi", "chimanga"]
    rows = []
    for i in range(8):
        passage = _copied_train_verse() if i == 0 else f"Mudzi wa nambala {i} uli ndi {answers[i % 4]} ambiri pafupi ndi mtsinje."
        rows.append({
            "link": f"https://example.org/{i}", "question_number": 1, "flores_passage": passage,
            "question": f"Kodi mudzi {i} uli ndi chiyani?", "mc_answer1": answers[0], "mc_answer2": answers[1],
            "mc_answer3": answers[2], "mc_answer4": answers[3], "correct_answer_num": str(i % 4 + 1),
            "dialect": "nya_Latn", "ds": "2023-05-03",
        })
    return rows


@pytest.fixture(scope="module")
def belebele_cache(tmp_path_factory):
    """A datasets cache holding only Belebele's nya_Latn test split, made current for this module."""
    import datasets.config

    folder = tmp_path_factory.mktemp("hf-datasets")
    parquet = folder.parent / "nya_Latn-test.parquet"
    pq.write_table(pa.Table.from_pylist(belebele_rows()), parquet)
    write_offline_copy("facebook/belebele", "nya_Latn", {"test": parquet}, cache_dir=folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(folder))  # read by datasets at call time
        patch.setenv("HF_DATASETS_CACHE", str(folder))
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        yield folder


def test_the_copy_is_where_datasets_reads_it_offline(belebele_cache):
    import datasets

    assert datasets.config.HF_HUB_OFFLINE  # tests/conftest.py: no hub
    loaded = datasets.load_dataset("facebook/belebele", "nya_Latn")
    assert list(loaded) == ["test"] and loaded["test"].to_list() == belebele_rows()
    folder = cached_copy("facebook/belebele", "nya_Latn")
    assert folder == belebele_cache / "facebook___belebele" / "nya_Latn" / "0.0.0" / "local"
    assert read_cached_rows(folder)["test"] == belebele_rows()
    assert cached_copy("facebook/belebele", "zul_Latn") is None


def test_benchmark_text_only_from_a_local_copy(belebele_cache, tmp_path):
    assert TASK in builtin_names(["builtin", "cloze", "quiz.jsonl"], "nya")
    texts = cached_benchmark_texts([TASK, "xnli_sw", "cloze"], "nya")
    assert list(texts) == [TASK]  # xnli_sw has no local copy: left out, nothing fetched
    assert _copied_train_verse() in texts[TASK] and "Kodi mudzi 3 uli ndi chiyani?" in texts[TASK]
    assert cached_benchmark_texts([TASK], "nya", cache_dir=tmp_path) == {}


@pytest.fixture(scope="module")
def offline_project(belebele_cache, tiny_models, tmp_path_factory):
    """A tiny project evaluated on the cached built-in task, one example shown before each of its items."""
    root = tiny_project_through(tmp_path_factory.mktemp("offline") / "p", tiny_models["llama-spm"], "train",
                                **{"eval.tasks": ["cloze", TASK], "eval.num_fewshot": {TASK: 1}})
    pipeline.run(Project(root), QUIET)
    return root


def test_builtin_task_runs_offline_into_metrics_and_report(offline_project):
    metrics = read_json(offline_project / "eval/metrics.json")
    assert not [s for s in metrics["skipped"] if s.get("task") == TASK]
    task = metrics["tasks"][TASK]
    assert (task["metric"], task["direction"], task["items"], task["num_fewshot"]) == ("acc", "higher is better", 8, 1)
    assert metrics["tasks"]["nya_cloze"]["num_fewshot"] == 0
    for label in ("base", "extended", "trained"):
        per_item = [json.loads(line)["acc"] for line in (offline_project / f"eval/items/{label}/{TASK}.jsonl").open()]
        assert len(per_item) == 8 and task["scores"][label]["value"] == pytest.approx(sum(per_item) / 8)
    report = (offline_project / "report/report.md").read_text(encoding="utf-8")
    row = next(line for line in report.splitlines() if line.startswith(f"| {TASK} "))
    assert row.split("|")[2].strip() == "1"  # the shots column


def test_corpus_drops_the_train_document_a_cached_benchmark_quotes(offline_project):
    stats = read_json(offline_project / "corpus/stats.json")
    assert stats["benchmark_overlap"] == {TASK: 1}
    assert stats["removed"]["benchmark"] == 1
    train = (offline_project / "corpus").glob("train-*")
    assert _copied_train_verse() not in "".join(p.read_text(encoding="utf-8", errors="ignore") for p in train)


class RecordingHFLM:
    """lm-eval's HF model, noting every context it is asked to score (made on first use: lm-eval imports slowly)."""

    @staticmethod
    def make(model, tokenizer):
        from lm_eval.models.huggingface import HFLM

        class Recording(HFLM):
            def loglikelihood(self, requests, disable_tqdm: bool = False):
                self.contexts.extend(request.args[0] for request in requests)
                return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

        lm = Recording(pretrained=model, tokenizer=tokenizer, batch_size=8)
        lm.contexts = []
        return lm


def test_fewshot_puts_examples_before_each_item(tiny_models, tmp_path):
    rows = [{"query": f"Mudzi {i} uli ndi", "choices": ["madzi", "nyumba", "mbuzi"], "gold": i % 3} for i in range(6)]
    data = tmp_path / "quiz.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    task = local_task(data)
    write_task_yaml(task, tmp_path / "tasks")
    folder = tiny_models["gpt2-bytelevel"]
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    contexts, scores = {}, {}
    for shots in (0, 2):
        lm = RecordingHFLM.make(model, tokenizer)
        scores[shots] = harness.run_local(lm, [task], tmp_path / "tasks", None, bootstrap_samples=100,
                                          fewshot={task.name: shots})[task.name]
        contexts[shots] = lm.contexts
    assert len(contexts[0]) == len(contexts[2]) == 6 * 3  # one request per choice, however many shots
    assert set(contexts[0]) == {r["query"] for r in rows}
    # Each 2-shot context is the item's own query after two other items with their answers.
    for context in contexts[2]:
        assert context.count("Mudzi") == 3 and context.endswith(tuple(r["query"] for r in rows))
    assert (scores[0].num_fewshot, scores[2].num_fewshot) == (0, 2)


def test_fewshot_table_names_tasks_or_entries_and_says_what_it_missed(tmp_path):
    from langbuild.evaluation.task_plan import TaskSettings, fewshot_key, plan_tasks

    for name, row in (("quiz", {"query": "Mudzi uli ndi", "choices": ["madzi", "mbuzi"], "gold": 0}), ("text", {"text": "Mudzi"})):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")

    def plan(num_fewshot):
        settings = TaskSettings(tasks=["quiz.jsonl", "text.jsonl"], language="nya", seed=0, cloze_choices=4, cloze_items=10,
                                max_bytes=0, generation_metric="exact_match", max_new_tokens=8, corpus=tmp_path,
                                resolve_path=lambda entry: tmp_path / entry, num_fewshot=num_fewshot)
        return plan_tasks(settings, [], tmp_path / "tasks")

    by_entry = plan({"quiz.jsonl": 2, "text.jsonl": 3, "local_nope": 1})
    assert by_entry.fewshot == {"local_quiz": 2}  # a bits-per-byte task has no prompt to put examples before
    assert [s["task"] for s in by_entry.skipped] == ["eval.num_fewshot.local_nope"]
    assert plan({"local_quiz": 2}).fewshot == plan(2).fewshot == {"local_quiz": 2}
    assert fewshot_key(plan(0)) == "" and fewshot_key(plan(2)) != fewshot_key(plan(3))
