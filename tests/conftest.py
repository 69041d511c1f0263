import os
from pathlib import Path

import pytest
from rich.console import Console

from tests.tiny import FAMILIES, build_tiny_model, chichewa_split, make_tiny_project, teach_tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every step any test runs checks that each setting it read is in a fingerprint behind it (pipeline.py).
os.environ.setdefault("LANGBUILD_CHECK_SETTINGS", "1")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """One tiny base model per tokenizer family, built once per test session."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {family: build_tiny_model(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="session")
def finished_projects(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """A tiny project per tokenizer family, run through every step once. Treat as read-only."""
    from langbuild import pipeline
    from langbuild.core.project import Project

    roots = {}
    for family in FAMILIES:
        root = make_tiny_project(tmp_path_factory.mktemp(family), tiny_models[family])
        pipeline.run(Project(root), Console(quiet=True))
        roots[family] = root
    return roots


@pytest.fixture(scope="session")
def taught_model(tmp_path_factory) -> Path:
    """A tiny byte-level model that has seen some Chichewa (see teach_tiny_model); built once per session."""
    folder = build_tiny_model(tmp_path_factory.mktemp("taught") / "gpt2-bytelevel", "gpt2-bytelevel")
    return teach_tiny_model(folder, chichewa_split()[0])
