"""Which of lm-eval's built-in tasks cover a language, from the code a project is configured with.

Benchmarks name their per-language tasks with different codes: Belebele and FLORES use ISO 639-3 plus a
script (``belebele_zsm_Latn``), XNLI and Global-MMLU use ISO 639-1 (``xnli_sw``), AfroBench mostly uses
639-3 without a script (``sib_nya_prompt_1``) and a few use English names (``xlsum_swahili_prompt_1``).
:func:`~langbuild.core.languages.parse_language` turns whatever the user typed into every code a task name may use, and each
family below is a list of name templates filled with those codes. Only names that lm-eval really
has are returned: its task index is the authority, cached per lm-eval version because building it
takes seconds.
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
import functools
import importlib.metadata
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError
from ..core.languages import Language, parse_language

# ---------------------------------------------------------------- task families

KIND_LABELS = {
    "multiple_choice": "multiple choice",
    "generation": "generation",
    "loglikelihood": "word prediction",
    "rolling": "bits per byte",
    "mixed": "mixed",
}


@dataclass(frozen=True)
class BuiltinTask:
    name: str
    family: str
    kind: str
    description: str


@dataclass(frozen=True)
class _Template:
    """One task-name pattern of a family.

    Placeholders: {code} any of the language's codes, {iso3} its three-letter codes, {Script} /
    {script} its script, {name} its English names. ``*`` and ``?`` match like shell globs, for
    names that carry a region (``mmmlu_sw_ke``, ``global_piqa_..._por_latn_braz``).
    """

    family: str
    pattern: str
    kind: str
    description: str


def _t(family: str, kind: str, description: str, *patterns: str) -> list[_Template]:
    return [_Template(family, pattern, kind, description) for pattern in patterns]


MC, GEN, LL, MIXED = "multiple_choice", "generation", "loglikelihood", "mixed"

FAMILIES: list[_Template] = [
    *_t("belebele", MC, "reading comprehension: a FLORES passage and a four-way question", "belebele_{iso3}_{Script}"),
    *_t("global_mmlu", MC, "general knowledge (MMLU, translated and culturally reviewed), six subject groups",
        "global_mmlu_{code}"),
    *_t("global_mmlu", MC, "general knowledge: all 57 MMLU subjects, translated", "global_mmlu_full_{code}"),
    *_t("afrobench", MC, "natural language inference (AfriXNLI)", "afrixnli_{code}_prompt_1"),
    *_t("afrobench", MC, "general knowledge, questions written in the language (AfriMMLU)", "afrimmlu_direct_{code}_prompt_1"),
    *_t("afrobench", GEN, "grade-school maths word problems (AfriMGSM)", "afrimgsm_{code}_prompt_1"),
    *_t("afrobench", MC, "general knowledge (OpenAI's translated MMLU)", "openai_mmlu_{code}_prompt_1"),
    *_t("afrobench", MC, "science questions (Uhura ARC-Easy)", "uhura-arc-easy_{code}_prompt_1"),
    *_t("afrobench", MC, "topic classification of sentences (SIB-200)", "sib_{code}_prompt_1"),
    *_t("afrobench", MC, "news topic classification (MasakhaNEWS)", "masakhanews_{code}_prompt_1"),
    *_t("afrobench", MC, "sentiment of tweets (AfriSenti)", "afrisenti_{code}_prompt_1"),
    *_t("afrobench", MC, "sentiment of film reviews (NollySenti)", "nollysenti_{code}_prompt_1"),
    *_t("afrobench", MC, "intent detection (INJONGO)", "injongointent_{code}_prompt_1"),
    *_t("afrobench", MC, "reading comprehension (NaijaRC)", "naijarc_{code}_prompt_1"),
    *_t("afrobench", GEN, "open question answering (AfriQA)", "afriqa_{code}_prompt_1"),
    *_t("afrobench", GEN, "named entities (MasakhaNER)", "masakhaner_{code}_prompt_1"),
    *_t("afrobench", GEN, "part-of-speech tagging (MasakhaPOS)", "masakhapos_{code}_prompt_1"),
    *_t("afrobench", GEN, "restoring diacritics (AfriDiacritics)", "afridiacritics_{code}_prompt_1"),
    *_t("afrobench", GEN, "news summarisation (XL-Sum)", "xlsum_{name}_prompt_1"),
    *_t("afrobench", GEN, "news translation from English (MAFAND)", "mafand_en-{code}_prompt_1"),
    *_t("afrobench", GEN, "news translation into English (MAFAND)", "mafand_{code}-en_prompt_1"),
    *_t("afrobench", GEN, "news translation from French (MAFAND)", "mafand_fr-{code}_prompt_1"),
    *_t("afrobench", GEN, "news translation into French (MAFAND)", "mafand_{code}-fr_prompt_1"),
    *_t("afrobench", GEN, "translation from English (SALT)", "salt_eng-{code}_prompt_1"),
    *_t("afrobench", GEN, "translation into English (SALT)", "salt_{code}-eng_prompt_1"),
    *_t("include", MC, "regional knowledge from local exams (INCLUDE)", "include_base_44_{name}"),
    *_t("global_piqa", MC, "physical commonsense, written natively (Global PIQA, non-parallel)",
        "global_piqa_nonparallel_cloze_{iso3}_{script}", "global_piqa_nonparallel_cloze_{iso3}_{script}_????"),
    *_t("global_piqa", MC, "physical commonsense, translated (Global PIQA, parallel)",
        "global_piqa_parallel_cloze_{iso3}_{script}", "global_piqa_parallel_cloze_{iso3}_{script}_????"),
    *_t("xnli", MC, "natural language inference", "xnli_{code}", "indicxnli_{code}"),
    *_t("xcopa", MC, "causal commonsense reasoning", "xcopa_{code}"),
    *_t("xstorycloze", MC, "choosing the right ending of a short story", "xstorycloze_{code}"),
    *_t("xwinograd", MC, "pronoun resolution (Winograd schemas)", "xwinograd_{code}"),
    *_t("paws-x", MC, "paraphrase identification", "paws_{code}"),
    *_t("okapi", MC, "science questions (ARC, machine-translated)", "arc_{code}"),
    *_t("okapi", MC, "commonsense sentence completion (HellaSwag, machine-translated)", "hellaswag_{code}"),
    *_t("okapi", MC, "general knowledge (MMLU, machine-translated)", "m_mmlu_{code}"),
    *_t("okapi", MC, "truthfulness (TruthfulQA, machine-translated)", "truthfulqa_{code}_mc1"),
    *_t("mmlu_prox", GEN, "harder general knowledge, answered with reasoning (MMLU-ProX lite)", "mmlu_prox_lite_{code}"),
    *_t("mmmlu", MC, "general knowledge (OpenAI's professionally translated MMLU)", "mmmlu_{code}_??"),
    *_t("mgsm", GEN, "grade-school maths word problems", "mgsm_direct_{code}"),
    *_t("xquad", GEN, "extractive question answering", "xquad_{code}"),
    *_t("tydiqa", GEN, "extractive question answering, written natively (TyDi QA)", "tydiqa_goldp_{code}"),
    *_t("mlqa", GEN, "extractive question answering", "mlqa_{code}_{code}"),
    *_t("lambada_multilingual", LL, "predicting the last word of a passage (LAMBADA, machine-translated)",
        "lambada_openai_mt_{code}"),
    *_t("multiblimp", MC, "grammatical agreement: minimal pairs of sentences", "multiblimp_{code}"),
    *_t("mela", MC, "grammatical acceptability", "mela_{code}"),
    *_t("bhs", MC, "grammatical agreement: minimal pairs of sentences", "bhs_{name}"),
    *_t("noreval", MC, "commonsense questions (NorEval)", "norcommonsenseqa_{code}"),
    *_t("noreval", MC, "science questions (NorEval)", "noropenbookqa_{code}"),
    *_t("noreval", MC, "quiz questions (NorEval)", "nrk_quiz_qa_{code}"),
    *_t("noreval", GEN, "translation from English (NorEval, Tatoeba)", "tatoeba_eng_{code}"),
    *_t("flores", GEN, "translation from English (FLORES-200)", "flores_eng_Latn-{iso3}_{Script}_prompt_1"),
    *_t("flores", GEN, "translation into English (FLORES-200)", "flores_{iso3}_{Script}-eng_Latn_prompt_1"),
    *_t("flores", GEN, "translation between this and other languages (FLORES-200)", "flores_{code}"),
    *_t("ntrex", GEN, "news translation from English (NTREX-128)", "ntrex_eng_Latn-{iso3}_{Script}_prompt_1"),
    *_t("ntrex", GEN, "news translation into English (NTREX-128)", "ntrex_{iso3}_{Script}-eng_Latn_prompt_1"),
]

# Suites made for one language, whose names carry no language code: iso3 -> (task, kind, description).
NATIVE_SUITES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "eus": (("basque_bench", MIXED, "Basque suite: reading, inference, QA, translation"),
            ("eus_exams_eu", MC, "Basque public-service exam questions"),
            ("eus_trivia", MC, "Basque trivia")),
    "cat": (("catalan_bench", MIXED, "Catalan suite: reading, inference, QA, translation"),),
    "glg": (("galician_bench", MIXED, "Galician suite: reading, inference, QA, translation"),),
    "por": (("portuguese_bench", MIXED, "Portuguese suite: inference, QA, translation"),),
    "spa": (("spanish_bench", MIXED, "Spanish suite: reading, inference, QA, translation"),),
    "fra": (("french_bench", MIXED, "French suite: reading, grammar, QA"),),
    "kor": (("kobest", MC, "Korean reasoning and understanding (KoBEST)"),
            ("kmmlu", MC, "Korean expert knowledge (KMMLU)"),
            ("haerae", MC, "Korean culture and language (HAE-RAE)")),
    "cmn": (("cmmlu", MC, "Chinese knowledge (CMMLU)"), ("ceval-valid", MC, "Chinese exam questions (C-Eval)"),
            ("tmmluplus", MC, "Traditional Chinese knowledge (TMMLU+)")),
    "arb": (("arabicmmlu", MC, "Arabic school and university exam questions (ArabicMMLU)"),
            ("arabic_leaderboard_light", MIXED, "Open Arabic LLM leaderboard tasks, light version")),
    "ary": (("darijammlu", MC, "general knowledge in Moroccan Arabic (DarijaMMLU)"),
            ("darijahellaswag", MC, "commonsense completion in Moroccan Arabic")),
    "arz": (("egymmlu", MC, "general knowledge in Egyptian Arabic"),
            ("egyhellaswag", MC, "commonsense completion in Egyptian Arabic")),
    "tur": (("turkishmmlu", MC, "Turkish exam questions (TurkishMMLU)"),),
    "ell": (("greekmmlu", MC, "Greek exam questions (GreekMMLU)"),),
    "jpn": (("japanese_leaderboard", MIXED, "Japanese leaderboard tasks"),),
    "isl": (("icelandic_winogrande", MC, "Icelandic pronoun resolution (WinoGrande)"),),
    "pol": (("polemo2", GEN, "Polish sentiment of reviews (PolEmo 2)"),),
    "nld": (("blimp_nl", MC, "Dutch grammar: minimal pairs of sentences (BLiMP-NL)"),),
    "ind": (("copal_id", MC, "Indonesian causal commonsense with local culture (COPAL-ID)"),),
    "ben": (("bangla_mmlu", MC, "Bangla general knowledge"), ("bangla_commonsenseqa", MC, "Bangla commonsense questions")),
}


def _values(language: Language) -> dict[str, list[str]]:
    return {
        "code": sorted(language.codes),
        "iso3": sorted(c for c in language.codes if len(c) == 3),
        "Script": [language.script],
        "script": [language.script.lower()],
        "name": sorted(language.names),
    }


def _expand(pattern: str, values: dict[str, list[str]]) -> Iterator[str]:
    """Every filling of a template's placeholders; the same placeholder gets the same value throughout."""
    keys = [key for key in values if "{" + key + "}" in pattern]
    for combo in itertools.product(*(values[key] for key in keys)):
        yield pattern.format(**dict(zip(keys, combo)))


class _Names:
    """Task names as a set for exact look-ups and a sorted list for glob look-ups by prefix."""

    def __init__(self, names: Iterable[str]):
        self.set = set(names)
        self.sorted = sorted(self.set)

    def matching(self, pattern: str) -> list[str]:
        if not any(ch in pattern for ch in "*?["):
            return [pattern] if pattern in self.set else []
        prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        start = bisect.bisect_left(self.sorted, prefix)
        found = []
        for name in itertools.islice(self.sorted, start, None):
            if not name.startswith(prefix):
                break
            if fnmatch.fnmatchcase(name, pattern):
                found.append(name)
        return found


def _native_tasks(language: Language, names: _Names) -> list[BuiltinTask]:
    suites = NATIVE_SUITES.get(language.iso3, ()) or next((NATIVE_SUITES[c] for c in language.codes if c in NATIVE_SUITES), ())
    return [BuiltinTask(name, "native", kind, description) for name, kind, description in suites if name in names.set]


def tasks_for_language(code: str, names: Iterable[str] | None = None) -> list[BuiltinTask]:
    """lm-eval's tasks that test ``code``, one per benchmark (its group or first prompt), belebele first.

    ``names`` replaces lm-eval's own index (tests pass a fixed list); None reads the cached index.
    """
    language = parse_language(code)
    pool = _Names(known_task_names() if names is None else names)
    values = _values(language)
    found: dict[str, BuiltinTask] = {}
    for template in FAMILIES:
        for candidate in _expand(template.pattern, values):
            for name in pool.matching(candidate):
                found.setdefault(name, BuiltinTask(name, template.family, template.kind, template.description))
    flores_at = next((i for i, task in enumerate(found.values()) if task.family in ("flores", "ntrex")), len(found))
    ordered = list(found.values())
    return ordered[:flores_at] + _native_tasks(language, pool) + ordered[flores_at:]


# ---------------------------------------------------------------- lm-eval's index, cached


def _cache_root() -> Path:
    from ..models.loading import cache_dir

    return cache_dir()


def lm_eval_version() -> str:
    try:
        return importlib.metadata.version("lm_eval")
    except importlib.metadata.PackageNotFoundError as err:
        raise LangbuildError("lm-eval is not installed: pip install lm-eval") from err


def index_cache_file(version: str | None = None) -> Path:
    """Where the task names of this lm-eval version are kept: ``$LANGBUILD_CACHE/lm_eval/task-names-<version>.json``."""
    return _cache_root() / "lm_eval" / f"task-names-{version or lm_eval_version()}.json"


@functools.cache
def lm_eval_task_index() -> dict:
    """lm-eval's own index of its tasks, groups and tags (name -> entry), built once per process: lm-eval
    walks its ~15,000 task YAML files for it, which takes about ten seconds."""
    from lm_eval.tasks import TaskManager

    from .harness import quiet_lm_eval

    with quiet_lm_eval():
        return TaskManager().task_index


def _build_index() -> list[str]:
    return sorted(lm_eval_task_index())


def _read_cache(path: Path, version: str) -> frozenset[str] | None:
    """The cached names, or None when the file is missing, corrupt or from another lm-eval version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("lm_eval_version") != version:
        return None
    names = data.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return None
    return frozenset(names)


_memo: dict[Path, frozenset[str]] = {}


def known_task_names() -> set[str]:
    """Every task, group and tag name lm-eval knows, from the cache file (built on first use)."""
    version = lm_eval_version()
    path = index_cache_file(version)
    if path not in _memo:
        names = _read_cache(path, version)
        if names is None:
            names = frozenset(_build_index())
            atomic_write_json(path, {"lm_eval_version": version, "names": sorted(names)})
        _memo[path] = names
    return set(_memo[path])


def cached_per_version(stem: str, key: str, build):
    """``build()``'s JSON value for this lm-eval version, kept under ``key`` in ``<stem>-<version>.json``
    beside the task names (what is derived from lm-eval's index: walking it takes ~10 s); rebuilt when
    the file is missing or unreadable."""
    version = lm_eval_version()
    path = index_cache_file(version).with_name(f"{stem}-{version}.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))[key]
    except (OSError, ValueError, KeyError, TypeError):
        value = build()
        atomic_write_json(path, {"lm_eval_version": version, key: value})
        return value


def _build_task_folders() -> dict[str, str]:
    """Task name -> the folder of its YAML, relative to lm-eval's task folder; single tasks only (a
    group or tag may gather tasks from several folders)."""
    import lm_eval.tasks

    root = Path(lm_eval.tasks.__file__).parent
    return {name: entry.yaml_path.parent.relative_to(root).as_posix() for name, entry in lm_eval_task_index().items()
            if entry.kind.name in ("TASK", "PY_TASK") and entry.yaml_path and entry.yaml_path.is_relative_to(root)}


def builtin_task_folder(name: str) -> Path | None:
    """The folder of lm-eval's YAML for the single task ``name`` (None for a group, a tag or an unknown
    name). A TaskManager over that folder finds the task without indexing all of lm-eval's (~10 s per
    eval); the map is cached per lm-eval version next to the task names."""
    import lm_eval.tasks

    folders = cached_per_version("task-folders", "folders", _build_task_folders)
    folder = folders.get(name) if isinstance(folders, dict) else None
    found = Path(lm_eval.tasks.__file__).parent / folder if isinstance(folder, str) else None
    return found if found is not None and found.is_dir() else None


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[-_]", name.lower())) - {""}


def _suggestion(name: str, names: set[str]) -> str | None:
    """The name the user most likely meant: same name in other case, then the shortest name holding all
    of its parts (``global_mmlu_ny`` -> ``global_mmlu_full_ny``, not the look-alike ``global_mmlu_yo``),
    then plain string similarity for typos."""
    lower = {n.lower(): n for n in names}
    if name.lower() in lower:
        return lower[name.lower()]
    wanted = _tokens(name)
    holding = [n for n in names if wanted <= _tokens(n)] if wanted else []
    if holding:
        return min(holding, key=lambda n: (len(n), n))
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


def check_task_names(requested: list[str], names: Iterable[str] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Split task names into those lm-eval knows and (unknown name, one-line reason with a suggestion)."""
    pool = set(known_task_names() if names is None else names)
    known, unknown = [], []
    for name in requested:
        if name in pool:
            known.append(name)
            continue
        close = _suggestion(name, pool)
        hint = f"did you mean '{close}'?" if close else "run 'langbuild eval --list-tasks' to see the tasks for your language"
        unknown.append((name, f"'{name}' is not an lm-eval task: {hint}"))
    return known, unknown


# ---------------------------------------------------------------- display


def render_task_table(language_code: str, tasks: Iterable[BuiltinTask]):
    """The table ``langbuild eval --list-tasks`` prints: task, family, kind, what it measures."""
    from rich.markup import escape
    from rich.table import Table

    try:
        language = parse_language(language_code)
        title = f"lm-eval tasks for {language.name} ({language.tag})"
    except LangbuildError:
        title = f"lm-eval tasks for {language_code}"
    table = Table(title=escape(title), caption="add a name to eval.tasks, or \"builtin\" for all of them")
    # On a narrow terminal the long task names fold rather than squeezing the description to a letter per line.
    table.add_column("task", style="cyan", overflow="fold", ratio=3)
    table.add_column("family", overflow="fold", ratio=2)
    table.add_column("kind", overflow="fold", ratio=2)
    table.add_column("what it measures", ratio=4, min_width=20)
    for task in tasks:
        table.add_row(escape(task.name), task.family, KIND_LABELS.get(task.kind, task.kind), escape(task.description))
    return table
