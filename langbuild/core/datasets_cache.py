"""The *prepared* copies of hub datasets that the ``datasets`` library keeps on disk, found, read and written
without the hub.

A non-streaming ``datasets.load_dataset(repo_id, config)`` run online leaves its Arrow files here, and with
``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` set (datasets 4 and 5) it reads them back through its
``cache`` builder without opening the hub's file cache (``hub/datasets--...``)::

    $HF_DATASETS_CACHE/<namespace>___<name>/<config id>/0.0.0/<revision>/dataset_info.json
                                                                       /<name>-<split>.arrow

(``HF_DATASETS_CACHE`` defaults to ``$HF_HOME/datasets``; the config id is the config's name, plus a suffix
when data_dir or data_files were given; the revision folder is the commit the load resolved.) Streaming
never writes here. Both lm-eval benchmarks (evaluation) and ``hf:`` corpus sources (corpus) read these
copies offline, so the layout lives here, below both.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .errors import LangbuildError

# The builders ``datasets`` prepares a repository's files with, by file extension (its packaged modules).
BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def datasets_cache_dir() -> Path:
    """Where ``datasets`` keeps prepared datasets: ``HF_DATASETS_CACHE``, read when datasets was imported."""
    import datasets.config

    return Path(datasets.config.HF_DATASETS_CACHE).expanduser()


def dataset_folder(repo_id: str, cache_dir: Path | None = None) -> Path:
    """``<namespace>___<snake_case name>``: the folder datasets keeps every config of ``repo_id`` in."""
    from datasets.naming import camelcase_to_snakecase

    *namespace, name = repo_id.split("/")
    return (cache_dir or datasets_cache_dir()) / "___".join([*namespace, camelcase_to_snakecase(name)])


def prepared_copies(repo_id: str, config: str | None, cache_dir: Path | None = None,
                    config_id: str | None = None) -> list[Path]:
    """Every prepared folder of ``repo_id``'s ``config`` (``config_id`` names its folder when data_dir or
    data_files made it differ from the config's name), newest first, as datasets ranks them."""
    config = config or "default"
    root = dataset_folder(repo_id, cache_dir) / (config_id or config)
    found = []
    for info in root.glob("*/*/dataset_info.json"):
        try:
            recorded = json.loads(info.read_text(encoding="utf-8")).get("config_name")
        except (OSError, ValueError):
            continue  # a half-written or foreign folder: datasets would not read it either
        # datasets checks the recorded name only for a plain config (its folder is then the name).
        if recorded == config or (config_id and config_id != config):
            found.append(info.parent)
    return sorted(found, key=lambda folder: folder.stat().st_mtime, reverse=True)


def cached_copy(repo_id: str, config: str | None, cache_dir: Path | None = None, *, revision: str | None = None,
                config_id: str | None = None) -> Path | None:
    """The prepared folder ``load_dataset(repo_id, config)`` reads offline (the newest, as datasets picks), or
    None; with ``revision``, only the folder of that revision (datasets itself ignores it offline)."""
    copies = prepared_copies(repo_id, config, cache_dir, config_id)
    if revision:
        copies = [folder for folder in copies if folder.name == revision]
    return copies[0] if copies else None


def split_arrow_files(folder: Path, split: str) -> list[Path] | None:
    """The Arrow files holding ``split`` in a prepared folder, in order; None when it has no such split.
    Named from dataset_info.json as datasets' cache builder names them (one file, or numbered shards)."""
    from datasets.naming import filenames_for_dataset_split

    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    split_info = (info.get("splits") or {}).get(split)
    if split_info is None:
        return None
    name = split_info.get("dataset_name") or info.get("dataset_name") or folder.parents[2].name.split("___")[-1]
    return [Path(f) for f in filenames_for_dataset_split(str(folder), name, split, "arrow", split_info.get("shard_lengths"))]


def split_names(folder: Path) -> list[str]:
    """The splits a prepared folder holds, for error messages."""
    try:
        return list(json.loads((folder / "dataset_info.json").read_text(encoding="utf-8")).get("splits") or {})
    except (OSError, ValueError):
        return []


def read_cached_rows(folder: Path, splits: tuple[str, ...] = ()) -> dict[str, list[dict]]:
    """The rows of each split in a prepared folder (all splits when ``splits`` is empty)."""
    from datasets import Dataset, concatenate_datasets

    rows = {}
    for split in split_names(folder):
        if splits and split not in splits:
            continue
        files = [f for f in split_arrow_files(folder, split) or [] if f.is_file()]
        if files:
            rows[split] = concatenate_datasets([Dataset.from_file(str(f)) for f in files]).to_list()
    return rows


def write_offline_copy(repo_id: str, config: str, split_files: dict[str, Path], cache_dir: Path | None = None,
                       revision: str = "local") -> Path:
    """Prepare ``split_files`` (.parquet, .jsonl, .json or .csv per split) as ``repo_id``'s ``config``, where
    ``datasets`` looks for it offline. The files are prepared by datasets' own builder for their format,
    as an online load would, then moved under the repository's cache name; returns the folder."""
    from datasets.load import import_main_class
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    suffixes = {Path(f).suffix.lower() for f in split_files.values()}
    if len(suffixes) != 1 or next(iter(suffixes)) not in BUILDERS:
        raise LangbuildError(f"the split files must all be one of {', '.join(BUILDERS)}: got {sorted(suffixes)}")
    cache_dir = Path(cache_dir or datasets_cache_dir())
    name = repo_id.split("/")[-1]
    with tempfile.TemporaryDirectory(dir=cache_dir.parent if cache_dir.parent.is_dir() else None) as staging:
        # A builder with repo_id set insists that the files live in that hub repository; so it is built
        # under the bare name with the config as its folder, and moved under the namespaced name after.
        builder_class = import_main_class(_PACKAGED_DATASETS_MODULES[BUILDERS[suffixes.pop()]][0])
        builder = builder_class(data_files={k: str(Path(v).resolve()) for k, v in split_files.items()}, cache_dir=staging,
                                dataset_name=name, config_name=config, config_id=config, hash=revision)
        builder.download_and_prepare()
        prepared = Path(builder.cache_dir)
        target = dataset_folder(repo_id, cache_dir) / config / prepared.parent.name / revision
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(prepared), str(target))
    return target
