"""The corpus step's settings, read from langbuild.toml, and the fingerprint of the files it reads.

``settings_from_config`` turns the ``corpus.*``, ``quality.*`` and ``langid.*`` settings into the
:class:`~langbuild.corpus.pipeline.CorpusSettings` that :func:`~langbuild.corpus.pipeline.build_corpus`
takes, including the texts kept out of train (decontamination); ``fingerprint_sources`` hashes the
files behind them, so the pipeline re-runs the step when one changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.errors import LangbuildError
from ..core.hashing import hash_file
from ..evaluation.benchmark_data import cached_benchmark_fingerprint, cached_benchmark_texts
from .clean import QualityConfig
from .fingerprint import fingerprint_location
from .pipeline import CorpusSettings, Split
from .sources import ReadCounts, ReadOptions, Source, plan_units, read_unit, source_files


def _weights(config) -> dict[str, float]:
    weights: dict[str, float] = {}
    paths = config.get("corpus.paths")
    for entry in config.get("corpus.weights"):
        spec, sep, number = entry.rpartition("=")
        try:
            weight = float(number)
        except ValueError:
            weight = -1.0
        if not sep or weight < 0 or weight != weight:
            raise LangbuildError(f"corpus.weights entry '{entry}' must be '<entry of corpus.paths>=<weight ≥ 0>', e.g. 'data/web=0.5'")
        if spec not in paths:
            raise LangbuildError(f"corpus.weights names '{spec}', which is not in corpus.paths: "
                                 f"use the entry exactly as written there")
        weights[spec] = weight
    return weights


def _sources(config) -> list[Source]:
    weights = _weights(config)
    train = [Source(spec, "train", weights.get(spec, 1.0)) for spec in config.get("corpus.paths")]
    held_out = [Source(spec, split) for split in ("valid", "test") for spec in config.get(f"corpus.{split}_paths")]
    return held_out + train


def _read_options(config) -> ReadOptions:
    return ReadOptions(
        text_field=config.get("corpus.text_field"), id_field=config.get("corpus.id_field"),
        group_field=config.get("corpus.valid_field"), txt_unit=config.get("corpus.txt_unit"),
        on_bad_record=config.get("corpus.on_bad_record"), on_bad_encoding=config.get("corpus.on_bad_encoding"),
    )


def _quality(config) -> QualityConfig:
    section = config.section("quality")
    disabled = tuple(section.pop("disabled"))
    return QualityConfig(min_chars=config.get("corpus.min_chars"), disabled=disabled, **section)


def _task_texts(path: Path) -> list[str]:
    """Every string of an evaluation JSONL file (queries, choices, answers): all of it must stay out of train."""
    texts: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    try:
                        collect(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # the eval step reports bad task lines; here only the text matters
    except (OSError, UnicodeDecodeError):
        return []
    return texts


def _contamination_texts(config, root: Path, read: ReadOptions) -> list[str]:
    if not config.get("corpus.decontaminate"):
        return []
    texts: list[str] = []
    specs = [*config.get("corpus.valid_paths"), *config.get("corpus.test_paths"), *config.get("corpus.decontaminate_paths")]
    units = plan_units([Source(spec, "valid") for spec in specs], root, 1 << 40, read.txt_unit)
    for unit in units:
        texts.extend(record.text for record in read_unit(unit, read, ReadCounts()))
    for task in config.get("eval.tasks"):
        if task.endswith(".jsonl"):
            path = Path(task).expanduser()
            texts.extend(_task_texts(path if path.is_absolute() else root / path))
    return texts


def _benchmark_tasks(config) -> tuple[list[str], str]:
    """eval.tasks and the language, or no tasks when decontamination is off."""
    return (config.get("eval.tasks") if config.get("corpus.decontaminate") else []), config.get("project.language")


def settings_from_config(config, root: Path) -> CorpusSettings:
    read = _read_options(config)
    return CorpusSettings(
        language=config.get("project.language"),
        sources=_sources(config),
        read=read,
        quality=_quality(config),
        langid_method=config.get("langid.method"),
        langid_model=str(_resolve(config.get("langid.model"), root)) if config.get("langid.model") else "",
        langid_threshold=config.get("langid.threshold"),
        langid_confusables=tuple(config.get("langid.confusables")),
        sample_documents=config.get("langid.sample_documents"),
        fix_mojibake=config.get("corpus.fix_mojibake"),
        dedup=config.get("corpus.dedup"),
        near_threshold=config.get("corpus.near_threshold"),
        paragraph_dedup=config.get("corpus.paragraph_dedup"),
        contamination_texts=_contamination_texts(config, root, read),
        benchmark_texts=cached_benchmark_texts(*_benchmark_tasks(config)),
        keep_removed=config.get("corpus.keep_removed"),
        split=Split(valid_field=config.get("corpus.valid_field"), valid_values=tuple(config.get("corpus.valid_values")),
                    valid_fraction=config.get("corpus.valid_fraction"), seed=config.get("project.seed"),
                    explicit_valid=bool(config.get("corpus.valid_paths")), test_values=tuple(config.get("corpus.test_values")),
                    test_fraction=config.get("corpus.test_fraction"), explicit_test=bool(config.get("corpus.test_paths"))),
        workers=config.get("corpus.workers"),
        unit_bytes=config.get("corpus.shard_mb") << 20,
    )


def _resolve(path: str, root: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else root / candidate


def fingerprint_sources(project) -> dict[str, Any]:
    """Hashes of every input file the corpus step reads (sources, held-out and task files, the langid model)."""
    config = project.config
    result: dict[str, Any] = {}
    for key in ("corpus.paths", "corpus.valid_paths", "corpus.test_paths", "corpus.decontaminate_paths"):
        for spec in config.get(key):
            for kind, location in source_files(spec, project.root, key):
                # Keys relative to the project, so a moved or copied project stays up to date.
                name, digest = fingerprint_location(kind, location, project.root)
                result[name] = digest
    for task in config.get("eval.tasks") if config.get("corpus.decontaminate") else ():
        task_path = _resolve(task, project.root)
        if task.endswith(".jsonl") and task_path.is_file():  # their text is kept out of train
            result[f"eval.tasks:{task}"] = hash_file(task_path)
    # A benchmark whose data appears in (or changes in) the local datasets cache re-runs decontamination.
    cached = cached_benchmark_fingerprint(*_benchmark_tasks(config))
    result.update({f"eval.tasks:cached:{task}": digest for task, digest in cached.items()})
    if config.get("langid.model"):
        model = _resolve(config.get("langid.model"), project.root)
        result["langid.model"] = hash_file(model) if model.is_file() else "missing"
    return result
