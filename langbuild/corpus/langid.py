"""Language identification for the corpus step: keep the documents written in the target language.

Three identifiers, chosen by ``langid.method`` (``auto`` picks the first that applies):

- **fasttext**: a fastText model file the user points to — GlotLID (Kargaran et al. 2023, "GlotLID:
  Language Identification for Low-Resource Languages", labels like ``nya_Latn``, 2,000+ languages) or
  lid.176 (Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification", labels like ``ny``).
- **py3langid**: the offline naive Bayes identifier of Lui & Baldwin 2012, "langid.py: An
  Off-the-shelf Language Identification Tool" (97 languages), when it knows the target.
- **profile**: for a language no identifier knows. A character n-gram profile (after Cavnar &
  Trenkle 1994, "N-Gram-Based Text Categorization") is fitted on the corpus itself, which is mostly
  in the target language; documents whose mean n-gram log-probability falls far below the corpus's
  own (a robust cut-off from the median and the median absolute deviation) are in something else.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import LangbuildError

METHODS = ("auto", "py3langid", "fasttext", "profile", "off")
MIN_PROFILE_DOCUMENTS = 50
PROFILE_NGRAMS = 20_000
PROFILE_ORDERS = (3,)  # trigrams with word boundaries: as separating as 1-3-grams here, at a third of the cost
JUDGED_CHARS = 2000  # the start of a document decides: identifiers saturate long before, and long documents stay cheap
FASTTEXT_INSTALL = "pip install fasttext-numpy2-wheel"


def _language(code: str):
    from ..core.languages import parse_language

    return parse_language(code)


def _py3langid():
    import py3langid.langid as module

    return module.LanguageIdentifier.from_modelpath(module.MODEL_DIR / module.MODEL_FILE, norm_probs=True)


@functools.cache
def py3langid_codes() -> frozenset[str]:
    """The languages py3langid knows; read once per process (loading its model takes ~0.5 s)."""
    return frozenset(_py3langid().nb_classes)


@dataclass(frozen=True)
class LangIdPlan:
    """What a worker needs to build its identifier: picklable, small."""

    method: str
    language: str
    threshold: float
    accepted: frozenset[str] = frozenset()       # labels that mean "the target"
    confusables: tuple[str, ...] = ()
    model_path: str = ""
    profile: dict[str, float] = field(default_factory=dict)
    unseen: float = 0.0
    cutoff: float = 0.0         # median score less the allowed spread, for a document of typical length
    spread: float = 0.0
    typical_ngrams: int = 1
    fitted_on: int = 0
    note: str = ""

    def build(self) -> Identifier:
        if self.method == "py3langid":
            return _Py3LangId(self)
        if self.method == "fasttext":
            return _FastText(self)
        return _Profile(self)

    def describe(self) -> str:
        if self.method == "py3langid":
            among = f" among {','.join(sorted({*self.accepted, *self.confusables}))}" if self.confusables else ""
            return f"py3langid ({'/'.join(sorted(self.accepted))} ≥ {self.threshold:.2f}{among})"
        if self.method == "fasttext":
            return f"fastText {Path(self.model_path).name} ({'/'.join(sorted(self.accepted))} ≥ {self.threshold:.2f})"
        return (f"character profile built from {self.fitted_on:,} corpus documents, cut-off {self.cutoff:.2f} "
                f"nats per n-gram{self.note}")


class Identifier:
    def judge(self, text: str) -> tuple[bool, str, float]:
        """(keep?, predicted label, score)."""
        raise NotImplementedError


class _Py3LangId(Identifier):
    def __init__(self, plan: LangIdPlan):
        self.plan = plan
        self.model = _py3langid()  # a private instance: set_languages must not change anyone else's
        if plan.confusables:
            self.model.set_languages(sorted({*plan.accepted, *plan.confusables} & set(self.model.nb_classes)))

    def judge(self, text: str) -> tuple[bool, str, float]:
        label, probability = self.model.classify(text[:JUDGED_CHARS])
        probability = float(probability)
        return label in self.plan.accepted and probability >= self.plan.threshold, label, probability


def _fasttext_label_matches(label: str, codes: frozenset[str], script: str | None) -> bool:
    name = label.removeprefix("__label__")
    language, _, label_script = name.partition("_")
    return language in codes and (not script or not label_script or label_script == script)


class _FastText(Identifier):
    def __init__(self, plan: LangIdPlan):
        self.plan = plan
        self.model = _load_fasttext(plan.model_path)
        self.script = _language(plan.language).script if "_" in plan.language else None

    def judge(self, text: str) -> tuple[bool, str, float]:
        line = text[:JUDGED_CHARS].replace("\n", " ")  # fastText predicts on one line
        if self.plan.confusables:
            labels, probabilities = self.model.predict(line, k=-1)
            pairs = [(label, float(p)) for label, p in zip(labels, probabilities) if self._relevant(label)]
            total = sum(p for _, p in pairs) or 1.0
            label, probability = max(pairs, key=lambda lp: lp[1]) if pairs else ("__label__other", 0.0)
            probability /= total
        else:
            labels, probabilities = self.model.predict(line, k=1)
            label, probability = labels[0], float(probabilities[0])
        keep = _fasttext_label_matches(label, self.plan.accepted, self.script) and probability >= self.plan.threshold
        return keep, label.removeprefix("__label__"), probability

    def _relevant(self, label: str) -> bool:
        language = label.removeprefix("__label__").partition("_")[0]
        return language in self.plan.accepted or language in self.plan.confusables


def _load_fasttext(path: str):
    try:
        import fasttext
    except ImportError:
        raise LangbuildError(f"langid.model needs the fastText package: {FASTTEXT_INSTALL}") from None
    if not Path(path).is_file():
        raise LangbuildError(f"langid.model '{path}' does not exist: download GlotLID's model.bin or lid.176.bin and point to it")
    try:
        fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence its deprecation banner
        return fasttext.load_model(str(path))
    except (ValueError, RuntimeError, MemoryError) as err:
        raise LangbuildError(f"langid.model '{path}' is not a readable fastText model ({err}): download it again") from None


# --- the character profile ---------------------------------------------------------------------------


def _ngrams(text: str) -> list[str]:
    padded = " " + " ".join(text[:JUDGED_CHARS].lower().split()) + " "  # spaces mark word boundaries
    return [padded[i:i + n] for n in PROFILE_ORDERS for i in range(len(padded) - n + 1)]


def _fit_profile(texts: Sequence[str]) -> tuple[dict[str, float], float]:
    counts: Counter = Counter()
    for text in texts:
        counts.update(_ngrams(text))
    top = dict(counts.most_common(PROFILE_NGRAMS))
    total = sum(counts.values()) + len(counts) + 1
    # Add-one smoothing over the n-grams seen; everything outside the kept top list gets the unseen value.
    profile = {gram: math.log((n + 1) / total) for gram, n in top.items()}
    return profile, math.log(1 / total)


def _score(text: str, profile: dict[str, float], unseen: float) -> tuple[float, int]:
    """(mean log-probability per n-gram, number of n-grams)."""
    grams = _ngrams(text)
    if not grams:
        return unseen, 0
    get = profile.get
    return sum(get(g, unseen) for g in grams) / len(grams), len(grams)


def _centre_and_spread(scores: list[float], deviations: float) -> tuple[float, float]:
    median = statistics.median(scores)
    mad = statistics.median(abs(s - median) for s in scores) * 1.4826 or 0.05
    return median, deviations * mad


def _spread(threshold: float) -> float:
    """langid.threshold for the profile: 0.5 (the default) keeps documents within 4 robust deviations of the corpus median."""
    return max(1.0, 8.0 * (1.0 - threshold))


def _fit_profile_plan(language: str, threshold: float, sample: Sequence[str]) -> LangIdPlan:
    texts = [t for t in sample if t.strip()]
    if len(texts) < MIN_PROFILE_DOCUMENTS:
        raise LangbuildError(f"a character profile needs at least {MIN_PROFILE_DOCUMENTS} documents and the corpus has "
                             f"{len(texts)}: add text, or set langid.method = \"off\"")
    profile, unseen = _fit_profile(texts)
    scored = [_score(t, profile, unseen) for t in texts]
    typical = int(statistics.median(n for _, n in scored)) or 1
    centre, spread = _centre_and_spread([s for s, _ in scored], _spread(threshold))
    # Refit without the documents the first profile already rejects, so foreign text in the sample does not shape it.
    kept = [t for t, (score, n) in zip(texts, scored) if score >= centre - _allowed(spread, n, typical)]
    profile, unseen = _fit_profile(kept)
    scored = [_score(t, profile, unseen) for t in kept]
    centre, spread = _centre_and_spread([s for s, _ in scored], _spread(threshold))
    return LangIdPlan("profile", language, threshold, profile=profile, unseen=unseen, cutoff=centre - spread, spread=spread,
                      typical_ngrams=typical, fitted_on=len(kept), note=f" ({language} has no py3langid model)")


def _allowed(spread: float, ngrams: int, typical: int) -> float:
    """How far below the centre a document may score: a mean over fewer n-grams is noisier (its spread grows as 1/sqrt(n))."""
    return spread * math.sqrt(max(1.0, typical / max(ngrams, 1)))


class _Profile(Identifier):
    def __init__(self, plan: LangIdPlan):
        self.plan = plan

    def judge(self, text: str) -> tuple[bool, str, float]:
        score, ngrams = _score(text, self.plan.profile, self.plan.unseen)
        centre = self.plan.cutoff + self.plan.spread
        keep = score >= centre - _allowed(self.plan.spread, ngrams, self.plan.typical_ngrams)
        return keep, "target" if keep else "other", score


# --- choosing ----------------------------------------------------------------------------------------


def _py3langid_label(language: str, known: frozenset[str]) -> str | None:
    parsed = _language(language)
    return next((code for code in sorted(parsed.codes) if code in known), None)


def plan_language_id(language: str, method: str = "auto", model_path: str = "", threshold: float = 0.5,
                     confusables: tuple[str, ...] = (), sample: Sequence[str] = ()) -> LangIdPlan | None:
    """The identifier to use for ``language`` (None when method is off); profiles are fitted on ``sample``."""
    if method not in METHODS:
        raise LangbuildError(f"unknown langid.method '{method}': choose one of {', '.join(METHODS)}")
    if method == "off":
        return None
    if method == "fasttext" or (method == "auto" and model_path):
        if not model_path:
            raise LangbuildError("langid.method = \"fasttext\" needs langid.model: the path of a GlotLID or lid.176 model file")
        _load_fasttext(model_path)  # fail now, in one line, not in every worker
        codes = _language(language).codes
        confusable = tuple(c for code in confusables for c in _language(code).codes)
        return LangIdPlan("fasttext", language, threshold, accepted=frozenset(codes), confusables=confusable, model_path=model_path)
    known = py3langid_codes()
    label = _py3langid_label(language, known)
    if method == "py3langid" or (method == "auto" and label):
        if label is None:
            raise LangbuildError(f"py3langid does not know '{language}': set langid.method = \"profile\" or give a "
                                 f"fastText model (langid.model)")
        confusable = tuple(c for c in (_py3langid_label(code, known) for code in confusables) if c)
        return LangIdPlan("py3langid", language, threshold, accepted=frozenset({label}), confusables=confusable)
    return _fit_profile_plan(language, threshold, sample)
