"""lm-eval built-in benchmarks' data as the ``datasets`` library keeps it on disk, read and written without the hub.

With ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` set, ``datasets.load_dataset("facebook/belebele", "nya_Latn")``
(datasets 4 and 5) never opens the hub's file cache (``hub/datasets--...``): it goes straight to the
*prepared* Arrow cache that an earlier online load left behind, read back by its ``cache`` builder::

    $HF_DATASETS_CACHE/facebook___belebele/nya_Latn/0.0.0/<revision>/dataset_info.json
                                                                  /belebele-test.arrow

(``HF_DATASETS_CACHE`` defaults to ``$HF_HOME/datasets``.) So a benchmark runs offline when that folder
exists: copy it from a machine where the task ran online, or write it from files you have with
``core.datasets_cache.write_offline_copy`` (``python -m langbuild.evaluation.benchmark_data``). The same folders are what
the corpus step reads to keep benchmark documents out of the training text; it never loads a dataset
that is not there, so without a local copy nothing is fetched.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..core.datasets_cache import cached_copy, read_cached_rows, write_offline_copy
from ..core.hashing import hash_json

# Where the prepared copies live and how they are found, read and written is core.datasets_cache's, shared
# with the corpus step's hf: sources: the layout is the datasets library's, not a benchmark's.


@dataclass(frozen=True)
class DatasetRef:
    """One dataset configuration a task reads (``dataset_path``/``dataset_name`` in its YAML) and its eval splits."""

    repo_id: str
    config: str
    splits: tuple[str, ...]


# ---------------------------------------------------------------- which datasets a task reads


def _leaf_refs(index: dict, tagged: dict[str, list[str]], name: str, seen: set[str]) -> list[list]:
    """[repo_id, config, splits] of every task under ``name`` (a task, a group of tasks, or a tag)."""
    entry = index.get(name)
    if entry is None or name in seen:
        return []
    seen.add(name)
    cfg = entry.cfg or {}
    if cfg.get("dataset_path"):
        if cfg.get("dataset_kwargs"):  # data_files / data_dir change the cache folder: not looked up
            return []
        splits = [cfg[k] for k in ("test_split", "validation_split", "fewshot_split") if cfg.get(k)]
        return [[cfg["dataset_path"], cfg.get("dataset_name") or "default", sorted(set(splits))]]
    children = cfg.get("task") if isinstance(cfg.get("task"), list) else tagged.get(name, [])
    children = [c if isinstance(c, str) else c.get("task") for c in children]
    return [ref for child in children if isinstance(child, str) for ref in _leaf_refs(index, tagged, child, seen)]


def _build_refs() -> dict[str, list[list]]:
    from .builtin_tasks import lm_eval_task_index

    index = lm_eval_task_index()
    tagged: dict[str, list[str]] = {}
    for name, entry in index.items():
        for tag in entry.tags or ():
            tagged.setdefault(tag, []).append(name)
    refs = {}
    for name in index:
        found = _leaf_refs(index, tagged, name, set())
        if found:
            refs[name] = sorted({(r[0], r[1], tuple(r[2])) for r in found})
    return refs


def task_datasets(names: list[str]) -> dict[str, list[DatasetRef]]:
    """The datasets behind each lm-eval task, group or tag in ``names``, from lm-eval's YAML (cached per
    lm-eval version: indexing its tasks takes seconds). Tasks built in Python or from data files are absent."""
    from .builtin_tasks import cached_per_version

    refs = cached_per_version("task-datasets", "tasks", _build_refs)
    return {name: [DatasetRef(r[0], r[1], tuple(r[2])) for r in refs[name]] for name in names if name in refs}


def builtin_names(entries: list[str], language: str) -> list[str]:
    """The lm-eval task names among eval.tasks entries: 'builtin' becomes the language's tasks; the
    tasks built from held-out text and task files are not lm-eval's."""
    names: list[str] = []
    for entry in entries:
        if entry == "builtin":
            from .builtin_tasks import tasks_for_language

            names += [task.name for task in tasks_for_language(language)]
        elif entry not in ("cloze", "heldout-bpb") and not entry.endswith((".jsonl", ".yaml", ".yml")):
            names.append(entry)
    return list(dict.fromkeys(names))


def _strings(row: dict) -> list[str]:
    return [value for value in row.values() if isinstance(value, str) and value.strip()]


def cached_benchmark_texts(entries: list[str], language: str, cache_dir: Path | None = None) -> dict[str, list[str]]:
    """Per lm-eval task of eval.tasks (``entries``) with a local copy of its data, the text of its evaluation
    documents (every text field of each row: passage, question and answers all count); nothing is fetched."""
    names = builtin_names(entries, language)
    if not names:
        return {}
    texts = {}
    for task, refs in task_datasets(names).items():
        found = []
        for ref in refs:
            folder = cached_copy(ref.repo_id, ref.config, cache_dir)
            if folder is not None:
                for rows in read_cached_rows(folder, ref.splits).values():
                    found.extend(text for row in rows for text in _strings(row))
        if found:
            texts[task] = found
    return texts


def cached_benchmark_fingerprint(entries: list[str], language: str, cache_dir: Path | None = None) -> dict[str, str]:
    """Per lm-eval task of eval.tasks, a hash of the local copies of its data (their folders and info files)."""
    names = builtin_names(entries, language)
    if not names:
        return {}
    prints = {}
    for task, refs in task_datasets(names).items():
        folders = [f for f in (cached_copy(r.repo_id, r.config, cache_dir) for r in refs) if f is not None]
        if folders:
            prints[task] = hash_json({str(f): (f / "dataset_info.json").read_text(encoding="utf-8") for f in folders})
    return prints


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m langbuild.evaluation.benchmark_data",
                                     description="Put a benchmark's files where datasets reads them offline.")
    parser.add_argument("repo_id", help="the task's dataset_path, e.g. facebook/belebele")
    parser.add_argument("config", help="the task's dataset_name, e.g. nya_Latn")
    parser.add_argument("splits", nargs="+", help="SPLIT=FILE (.parquet, .jsonl, .json or .csv), e.g. test=nya.parquet")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: HF_DATASETS_CACHE")
    args = parser.parse_args(argv)
    files = dict(item.split("=", 1) for item in args.splits if "=" in item)
    if len(files) != len(args.splits):
        parser.error("each split is SPLIT=FILE")
    print(write_offline_copy(args.repo_id, args.config, {k: Path(v) for k, v in files.items()}, args.cache_dir))


if __name__ == "__main__":
    main()
