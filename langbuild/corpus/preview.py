"""A quick look at corpus sources before a project is made: what they hold, read the way the corpus step
reads them (the same expansion of files, folders and globs, the same readers), but only a bounded part.

The wizard shows this so a person sees a wrong folder or the wrong language at once, not after the
corpus step has run. Hub datasets (``hf:``) are not opened here: that needs the network or the
datasets cache, and the corpus step reports it. They are parsed, though, so a malformed one is refused
at once and the preview says how it was read (a two-part ``hf:<id>:<x>`` is a split or a config).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..text.textio import script_counts
from .hub_source import HubSource, is_hub_spec
from .sources import ReadCounts, ReadOptions, Source, Unit, file_format, read_unit, source_files

# Reading stops after this many documents: a preview must answer in a moment on a large corpus.
PREVIEW_DOCUMENTS = 20000
SCRIPT_SAMPLE_DOCUMENTS = 2000  # the scripts are counted on the first documents only


@dataclass
class CorpusPreview:
    files: int = 0
    bytes: int = 0
    documents: int = 0
    documents_capped: bool = False  # True: reading stopped at PREVIEW_DOCUMENTS, there are more
    sample: str = ""
    scripts: Counter = field(default_factory=Counter)  # letters per Unicode script, e.g. LATIN
    remote: list[str] = field(default_factory=list)  # hf: sources as written, parsed but not opened here

    def script_shares(self) -> list[tuple[str, float]]:
        """Scripts with their share of the letters counted, largest first."""
        total = sum(self.scripts.values()) or 1
        return [(name, count / total) for name, count in self.scripts.most_common()]


def _units(spec: str, root: Path) -> list[Unit]:
    """One whole-file unit per file the source names (a preview never cuts files into byte ranges)."""
    units = []
    for kind, location in source_files(spec, root):
        if kind == "file":
            fmt, compression = file_format(Path(location))
            units.append(Unit(len(units), Source(spec, "train"), fmt, location, compression))
        else:
            units.append(Unit(len(units), Source(spec, "train"), kind, location))
    return units


def preview_corpus(specs: list[str], root: Path, options: ReadOptions | None = None) -> CorpusPreview:
    """Files, total size, documents (up to PREVIEW_DOCUMENTS), a sample line and the scripts seen in
    ``specs`` resolved against ``root``; raises the corpus step's own LangbuildError for a source that
    names nothing (a missing path, an empty glob, an unknown packaged corpus)."""
    options = options or ReadOptions()
    preview = CorpusPreview()
    units: list[Unit] = []
    for spec in specs:
        if is_hub_spec(spec):
            HubSource.parse(spec)  # a malformed one (an unknown option, a slice) is refused now, not at the corpus step
            preview.remote.append(spec)
            continue
        units.extend(_units(spec, root))
    preview.files = sum(1 for unit in units if unit.kind not in ("package", "datasets"))
    preview.bytes = sum(os.path.getsize(unit.location) for unit in units if os.path.isfile(unit.location))
    scripted: list[str] = []
    for unit in units:
        for record in read_unit(unit, options, ReadCounts()):
            if not record.text.strip():
                continue
            preview.documents += 1
            if not preview.sample:
                preview.sample = record.text.strip()
            if len(scripted) < SCRIPT_SAMPLE_DOCUMENTS:
                scripted.append(record.text)
            if preview.documents >= PREVIEW_DOCUMENTS:
                preview.documents_capped = True
                break
        if preview.documents_capped:
            break
    preview.scripts = script_counts(scripted)
    return preview
