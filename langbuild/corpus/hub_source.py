"""``hf:`` sources: a Hugging Face hub dataset named the way people name one, parsed in one place.

The syntax, in ``corpus.paths``, ``corpus.valid_paths``, ``corpus.test_paths`` and ``train.replay_text``::

    hf:<id>[:<config>[:<split>]][?revision=<sha>&data_dir=<folder>&data_files=<glob>]

    hf:HuggingFaceFW/fineweb-2:nya_Latn                 config nya_Latn, split train
    hf:wikimedia/wikipedia:20231101.ny:train
    hf:someorg/corpus::test?revision=1a2b3c              the default config, split test, pinned
    hf:someorg/corpus?data_files=nya/*.parquet           data_files may be given more than once

The split defaults to ``train`` and the config to the dataset's default. Two parts (``hf:<id>:<x>``) were
once always ``<id>:<split>``; they still are when ``<x>`` is a usual split name (train, test, validation,
valid, dev), and otherwise ``<x>`` is a config read with split train, which is how hub corpora of many
languages (FineWeb-2, MADLAD-400, CulturaX, Wikipedia) are named. Slices such as ``train[:1000]`` are
refused: datasets cannot slice a streamed split (measured, datasets 5.2: "Bad split").

Nothing here touches the network or imports datasets: fingerprints, previews and error messages parse
sources cheaply, and only :mod:`.hub_reader` opens one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import LangbuildError

PREFIX = "hf:"
SYNTAX = "hf:<id>[:<config>[:<split>]][?revision=...&data_dir=...&data_files=...]"
USUAL_SPLITS = ("train", "test", "validation", "valid", "dev")
OPTIONS = ("revision", "data_dir", "data_files")
DEFAULT_SPLIT = "train"


def is_hub_spec(spec: str) -> bool:
    return spec.startswith(PREFIX)


@dataclass(frozen=True)
class HubSource:
    """One hub dataset split, with what ``datasets.load_dataset`` needs to find exactly that data."""

    repo_id: str
    config: str | None = None      # None: the dataset's default configuration
    split: str = DEFAULT_SPLIT
    revision: str | None = None
    data_dir: str | None = None
    data_files: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str, setting: str = "corpus.paths") -> HubSource:
        """The source ``spec`` names (``hf:`` and all); a LangbuildError naming ``setting`` if it is malformed."""
        if not is_hub_spec(spec):
            raise LangbuildError(f"'{spec}' is not a hub source ({SYNTAX}): fix {setting}")
        body, _, query = spec[len(PREFIX):].partition("?")
        if "[" in body:  # before splitting on ':', which a slice such as train[:1000] holds too
            bracket = body.index("[")
            sliced = body[:bracket].rsplit(":", 1)[-1] + body[bracket:]
            raise LangbuildError(f"'{spec}': a hub split cannot be sliced ({sliced}) because it is streamed; name the "
                                 f"whole split (the corpus step reads what it needs): fix {setting}")
        parts = body.split(":")
        repo_id = parts[0].strip()
        if not repo_id or repo_id.count("/") > 1 or len(parts) > 3:
            raise LangbuildError(f"'{spec}' is not a hub dataset (write {SYNTAX}, "
                                 f"e.g. hf:HuggingFaceFW/fineweb-2:nya_Latn:train): fix {setting}")
        config, split = None, DEFAULT_SPLIT
        if len(parts) == 2:
            # Backward compatible: hf:<id>:<split> when it reads as a split, else hf:<id>:<config>.
            if parts[1] in USUAL_SPLITS:
                split = parts[1]
            else:
                config = parts[1] or None
        elif len(parts) == 3:
            config, split = parts[1] or None, parts[2] or DEFAULT_SPLIT
        return cls(repo_id, config, split, **_options(spec, query, setting))

    def spec(self) -> str:
        """The canonical ``hf:`` form, every part explicit: equal sources give equal strings."""
        options = [(key, value) for key in ("revision", "data_dir") if (value := getattr(self, key))]
        options += [("data_files", value) for value in self.data_files]
        query = "&".join(f"{key}={value}" for key, value in options)
        return f"{PREFIX}{self.repo_id}:{self.config or ''}:{self.split}" + (f"?{query}" if query else "")

    def details(self) -> str:
        """How the source was read: ``config nya_Latn, split train, revision 1a2b3c``."""
        details = [f"config {self.config or 'default'}", f"split {self.split}"]
        details += [f"{key} {value}" for key in ("revision", "data_dir") if (value := getattr(self, key))]
        details += [f"data_files {', '.join(self.data_files)}"] if self.data_files else []
        return ", ".join(details)

    def describe(self) -> str:
        """For messages: ``someorg/corpus (config nya_Latn, split train, revision 1a2b3c)``."""
        return f"{self.repo_id} ({self.details()})"

    def fingerprint(self) -> dict[str, Any]:
        """What stands for the data in a step fingerprint: a hub dataset cannot be hashed offline, so every
        part of its name does, and changing any of them re-runs the step."""
        return {"id": self.repo_id, "config": self.config, "split": self.split, "revision": self.revision,
                "data_dir": self.data_dir, "data_files": list(self.data_files)}

    def load_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``datasets.load_dataset`` (without ``streaming``); unset options left out so
        datasets applies its own defaults."""
        arguments: dict[str, Any] = {"path": self.repo_id, "name": self.config, "split": self.split}
        if self.revision:
            arguments["revision"] = self.revision
        if self.data_dir:
            arguments["data_dir"] = self.data_dir
        if self.data_files:
            arguments["data_files"] = self.data_files[0] if len(self.data_files) == 1 else list(self.data_files)
        return arguments


def _options(spec: str, query: str, setting: str) -> dict[str, Any]:
    """revision, data_dir and data_files from ``key=value&...``, taken as written (no URL decoding: globs
    and folder names are passed to datasets unchanged)."""
    found: dict[str, Any] = {}
    files: list[str] = []
    for item in filter(None, query.split("&")):
        key, equals, value = item.partition("=")
        if key not in OPTIONS:
            raise LangbuildError(f"'{spec}': unknown option '{key}' (allowed: {', '.join(OPTIONS)}): fix {setting}")
        if not equals or not value:
            raise LangbuildError(f"'{spec}': option '{key}' has no value (write {key}=...): fix {setting}")
        if key == "data_files":
            files.append(value)
        elif key in found:
            raise LangbuildError(f"'{spec}': option '{key}' is given twice: fix {setting}")
        else:
            found[key] = value
    return {**found, "data_files": tuple(files)}
