"""A target-language cloze benchmark built from held-out text, for languages no public benchmark covers.

Each item is the start of a held-out passage; the model must pick the passage's true continuation
among ``choices`` continuations, the others cut from different held-out passages. It is the
story-cloze idea (Mostafazadeh et al. 2016, "A Corpus and Cloze Evaluation for Deeper Understanding
of Commonsense Stories") with continuations mined from text instead of written by annotators, so it
needs nothing but the held-out split.

Two things keep it honest:

* **length is no cue**: distractors are drawn among the continuations closest in length to the true
  one, with the true one's length rank among the choices uniform; :func:`length_baseline` reports how
  well always picking the longest or shortest choice would do (it should sit near chance);
* **decontamination**: an item is dropped when any word n-gram (13 words, the GPT-3 paper's rule,
  Brown et al. 2020, "Language Models are Few-Shot Learners") of its passage start joined with any of
  its choices occurs in the train split, so no item's text was seen in training.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from ..text.words import bare_words, word_spans

NGRAM = 13  # words; items shorter than this cannot be checked for overlap and are not built
MIN_CONTINUATION_WORDS = 4


@dataclass(frozen=True)
class ClozeItem:
    query: str
    choices: tuple[str, ...]
    gold: int

    def as_json(self) -> dict:
        return {"query": self.query, "choices": list(self.choices), "gold": self.gold}


def words_of(text: str) -> list[str]:
    """Lower-cased bare words (langbuild.text.words, as in the corpus step): punctuation and case must not hide an overlap."""
    return bare_words(text.lower())


def _cut(text: str, rng: random.Random) -> tuple[str, str] | None:
    """Split a passage at a word boundary 40-60 % of the way in; None when it is too short to check."""
    spans = word_spans(text)
    if len(spans) < NGRAM or len(words_of(text)) < NGRAM:
        return None
    cut = max(1, min(len(spans) - MIN_CONTINUATION_WORDS, round(len(spans) * rng.uniform(0.4, 0.6))))
    # Cut the text itself, not re-joined words: text written without spaces must not gain any.
    # (For space-separated text this is " ".join(words[:cut]), " ".join(words[cut:]).)
    at = spans[cut][0]
    return " ".join(text[:at].split()), " ".join(text[at:].split())


def length_matched_distractors(pool: list[str], true: str, wanted: int, rng: random.Random) -> list[str]:
    """``wanted`` continuations from ``pool`` near the true one's length, with the true one's length rank uniform.

    Taking simply the nearest lengths would leave the true continuation in the middle of its choices,
    a cue of its own ("never pick the longest"); drawing how many distractors are shorter makes every
    length rank equally likely, so no rule on lengths beats chance.
    """
    # Continuations exactly as long as the true one are left out: a tie would blur its length rank.
    others = sorted({c for c in pool if len(c) != len(true)}, key=lambda c: (len(c), c))
    shorter = [c for c in others if len(c) < len(true)][::-1]  # nearest first
    longer = [c for c in others if len(c) > len(true)]
    below = rng.randint(0, wanted)
    below = min(max(below, wanted - len(longer)), len(shorter))
    chosen = _near(shorter, below, rng) + _near(longer, wanted - below, rng)
    return chosen if len(chosen) == wanted else []


def _near(ordered: list[str], count: int, rng: random.Random) -> list[str]:
    """``count`` items drawn at random among the 3·count first (nearest) of ``ordered``."""
    nearest = ordered[: 3 * count]
    return rng.sample(nearest, count) if len(nearest) >= count else []


def build_items(passages: Iterable[str], seed: int = 0, choices: int = 4, max_items: int = 200) -> list[ClozeItem]:
    """Cloze items from held-out passages, deterministic for a seed."""
    rng = random.Random(seed)
    cuts = [pair for pair in (_cut(p.strip(), rng) for p in passages) if pair]
    if len(cuts) < choices:
        return []
    order = list(range(len(cuts)))
    rng.shuffle(order)
    continuations = [continuation for _, continuation in cuts]
    items = []
    for index in order[:max_items]:
        start, true = cuts[index]
        distractors = length_matched_distractors(continuations, true, choices - 1, rng)
        if len(distractors) < choices - 1:
            continue
        options = [true, *distractors]
        rng.shuffle(options)
        items.append(ClozeItem(start, tuple(options), options.index(true)))
    return items


def _ngrams(words: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def item_ngrams(item: ClozeItem) -> set[tuple[str, ...]]:
    """Every n-gram of the passage start joined with each choice: the text a model would be scored on."""
    query = words_of(item.query)
    grams: set[tuple[str, ...]] = set()
    for choice in item.choices:
        grams |= _ngrams(query + words_of(choice))
    return grams


def contaminated(grams_by_item: list[set[tuple[str, ...]]], train_texts: Iterable[str]) -> set[int]:
    """Indices of the items sharing an n-gram with the train split, streaming it once.

    Memory holds only the benchmark's n-grams, never the train split's, so a corpus of any size works.
    """
    owner: dict[tuple[str, ...], list[int]] = {}
    for index, grams in enumerate(grams_by_item):
        for gram in grams:
            owner.setdefault(gram, []).append(index)
    hit: set[int] = set()
    for text in train_texts:
        words = words_of(text)
        for i in range(len(words) - NGRAM + 1):
            found = owner.get(tuple(words[i : i + NGRAM]))
            if found:
                hit.update(found)
    return hit


def text_ngrams(text: str) -> set[tuple[str, ...]]:
    return _ngrams(words_of(text))


def length_baseline(items: list[ClozeItem]) -> float:
    """Accuracy of the better of two blind rules, 'pick the longest' and 'pick the shortest' choice."""
    if not items:
        return 0.0
    longest = sum(max(range(len(i.choices)), key=lambda k: len(i.choices[k])) == i.gold for i in items)
    shortest = sum(min(range(len(i.choices)), key=lambda k: len(i.choices[k])) == i.gold for i in items)
    return max(longest, shortest) / len(items)
