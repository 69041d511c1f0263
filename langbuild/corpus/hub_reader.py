"""The rows of an ``hf:`` source: streamed from the hub, or read from the prepared copy when offline.

Online, ``datasets.load_dataset(..., streaming=True)`` reads only as far as the corpus step (or the replay
budget) asks, and keeps nothing on disk. Offline (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE or
LANGBUILD_OFFLINE set) the only data there can be is the prepared copy a non-streaming load left in
``HF_DATASETS_CACHE`` (see :mod:`langbuild.core.datasets_cache`), and it is read here directly:

* datasets 5.2 offline does read that copy itself, streaming or not, but it picks the newest copy and
  ignores ``revision`` (measured), so a pinned source could silently read other data than its
  fingerprint names; here a revision must name the copy's folder;
* its failures offline are several different messages (ConnectionError, "Couldn't find cache", "Bad
  split"); here a missing copy is one line saying what to do;
* LANGBUILD_OFFLINE alone does not switch datasets offline; reading the copy directly never opens a socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ..core.environment import is_offline, offline_variables_set
from ..core.errors import LangbuildError
from .hub_source import HubSource


def hub_rows(source: HubSource, setting: str = "corpus.paths") -> Iterator[dict]:
    """Every row of the source's split, lazily; any failure is one LangbuildError line."""
    offline = is_offline()
    try:
        yield from (_prepared_rows(source, setting) if offline else _streamed_rows(source))
    except LangbuildError:
        raise
    except Exception as err:  # offline, unknown id, gated dataset, damaged copy: all end the same way for the user
        detail = f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"
        if offline:
            raise LangbuildError(f"cannot read the local copy of hub dataset {source.describe()} ({detail}): "
                                 f"prepare it again, or download the files and list them in {setting}") from None
        raise LangbuildError(f"cannot stream hub dataset '{source.repo_id}' ({detail}): check the id, config and split "
                             f"and your connection, or download it and list the files in {setting}") from None


def _streamed_rows(source: HubSource) -> Iterator[dict]:
    import datasets

    yield from datasets.load_dataset(**source.load_arguments(), streaming=True)


def _config_id(source: HubSource) -> str | None:
    """The folder name datasets gives a config loaded with data_dir or data_files (offline it looks for the
    same name); None when neither is set and the folder is the config's name."""
    if not (source.data_dir or source.data_files):
        return None
    import datasets

    options = {key: value for key, value in source.load_arguments().items() if key in ("data_dir", "data_files")}
    return datasets.BuilderConfig(name=source.config or "default").create_config_id(config_kwargs=options)


def find_prepared_copy(source: HubSource, cache_dir: Path | None = None) -> Path | None:
    """The prepared folder this source reads offline, or None. Without a config, as datasets does: the
    'default' config, else the one config there is."""
    from ..core.datasets_cache import cached_copy, dataset_folder

    config_id = _config_id(source)
    found = cached_copy(source.repo_id, source.config, cache_dir, revision=source.revision, config_id=config_id)
    if found is None and source.config is None and config_id is None:
        configs = [p.name for p in dataset_folder(source.repo_id, cache_dir).glob("*") if p.is_dir()]
        if len(configs) == 1:
            found = cached_copy(source.repo_id, configs[0], cache_dir, revision=source.revision)
    return found


def _prepared_rows(source: HubSource, setting: str) -> Iterator[dict]:
    import pyarrow as pa

    from ..core.datasets_cache import datasets_cache_dir, split_arrow_files, split_names

    folder = find_prepared_copy(source)
    if folder is None:
        raise LangbuildError(_no_copy_message(source, setting, datasets_cache_dir()))
    files = split_arrow_files(folder, source.split)
    if files is None:
        raise LangbuildError(f"the local copy of hub dataset {source.describe()} in {folder} has no split "
                             f"'{source.split}' (it has: {', '.join(split_names(folder)) or 'none'}): fix {setting}")
    for file in files:
        # Prepared files are Arrow IPC streams; read a record batch at a time so memory stays flat.
        with pa.memory_map(str(file)) as handle:
            for batch in pa.ipc.open_stream(handle):
                yield from batch.to_pylist()


def _no_copy_message(source: HubSource, setting: str, cache_dir: Path) -> str:
    # The CLI cuts a message at 400 characters: what to do comes before where it looked.
    switch = (offline_variables_set() or ["offline"])[0]
    pinned = ""
    if source.revision:
        others = find_prepared_copy(replace(source, revision=None), cache_dir)
        pinned = f" (the one there is of revision {others.name})" if others is not None else ""
    start = f"hub dataset {source.describe()} has no local copy{pinned} and langbuild is offline ({switch})"
    where = f" (looked in {cache_dir})"
    if source.data_dir or source.data_files:
        # Online, datasets names such a copy by a hash of the hub's resolved file list, which offline
        # neither it nor langbuild can recompute: a load run online would not help.
        return (f"{start}: a copy made with data_dir or data_files cannot be found offline; download those files "
                f"and list them in {setting}{where}")
    load = ", ".join([repr(source.repo_id), repr(source.config)] +
                     [f"{key}={value!r}" for key, value in source.load_arguments().items() if key not in ("path", "name")])
    return (f"{start}: run datasets.load_dataset({load}) once online (streaming keeps no copy), or download its "
            f"files and list them in {setting}{where}")
