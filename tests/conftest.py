import os
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from rich.console import Console

from tests import forked_cli, tiny
from tests.tiny import FAMILIES, build_tiny_model, built_once, chichewa_split, make_tiny_project, teach_tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every step any test runs checks that each setting it read is in a fingerprint behind it (pipeline.py).
os.environ.setdefault("LANGBUILD_CHECK_SETTINGS", "1")

# ---------------------------------------------------------------- two workers (pytest-xdist, `make test`)
#
# `make test` runs the suite in two worker processes on two cores: `-n 2 --dist loadfile
# --no-loadscope-reorder`. A test file runs whole in one worker, so its module fixtures are built once;
# what many files share is built once per run for both workers (``built_once``, below).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    # One torch thread in each worker and in every process a test starts from it (the CLI, the kill
    # campaigns, gloo pairs inherit the variable): two workers of two threads each would put four busy
    # threads on two cores. A training step still sets its own count (train.threads) where it runs.
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by torch when first imported, after this file

# The test files that take longest, longest first: under xdist they are handed out before the rest, so
# that neither worker is left running one of them alone at the end while the other idles. Only the order
# of the work changes; files not named here follow in collection order.
LONGEST_FIRST = (
    "tests/test_real_model.py",            # the real SmolLM2 pipeline, Gemma's tokenizer
    "tests/training/test_fsdp.py",         # two-process FSDP runs, one killed and resumed
    "tests/steps/test_train_recipes.py",   # two-process DDP runs, one killed and resumed
    "tests/reliability/test_faults.py",    # kill -9 at a seeded moment of every step and at each crash point
    "tests/reliability/test_bad_inputs.py",  # 44 cases, each in a process of its own (forked, tests/forked_cli.py)
    "tests/models/test_gguf_export.py",
    "tests/steps/test_evaluate.py",
    "tests/test_e2e.py",
    "tests/test_pipeline.py",
    "tests/test_cli.py",                   # a process per error path (forked)
)


def pytest_configure(config):
    """auto precision's bf16 measurement (training/precision.py), taken once for the whole run on one
    thread (what each worker runs) and handed to every worker and process through LANGBUILD_BF16_SPEEDUP,
    as a user who knows the figure would. Each process would otherwise take it again: ~30 processes,
    2-3 s each on a CPU that emulates bf16. Tests of the measurement itself clear the variable."""
    from langbuild.training import precision

    if os.environ.get(precision.SPEEDUP_ENV) or XDIST_WORKER:
        return  # set by the user, or inherited from the controller of this xdist run
    import torch

    threads = torch.get_num_threads()
    if config.getoption("numprocesses", None):
        torch.set_num_threads(1)
    try:
        os.environ[precision.SPEEDUP_ENV] = f"{precision.bf16_speedup():.3f}"
    finally:
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """Under xdist, the files of LONGEST_FIRST first (``--no-loadscope-reorder`` hands files out in this
    order; by default xdist starts with the files of most tests). A single-process run keeps its order."""
    if not XDIST_WORKER:
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: files keep their order


@pytest.fixture(autouse=True)
def _one_torch_thread_per_worker():
    """A training step run in-process sets torch's thread count (train.threads) and leaves it: back to one
    thread before each test under xdist, as OMP_NUM_THREADS gives every other process."""
    if XDIST_WORKER and "torch" in sys.modules:
        threads = os.environ["OMP_NUM_THREADS"]
        sys.modules["torch"].set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else 1)
    yield


@pytest.fixture(scope="session", autouse=True)
def _session_forked_cli():
    """The environment that single CLI commands start from (tests/test_cli.py's ``langbuild``, forked from
    tests/forked_cli.py's SESSION server): the session's, taken before any test changes it."""
    forked_cli.SESSION.env = {key: value for key, value in os.environ.items() if key != "LANGBUILD_DEBUG"}
    yield
    forked_cli.SESSION.close()


@pytest.fixture(scope="session", autouse=True)
def _shared_folder(tmp_path_factory):
    """Where ``built_once`` keeps what is built once per run: the run's common temporary folder under
    xdist (both workers see it; pytest removes it after a passing run), else this session's."""
    base = tmp_path_factory.getbasetemp()
    tiny.SHARED_ROOT = (base.parent if XDIST_WORKER else base) / "built-once"
    yield


@pytest.fixture(scope="session")
def tiny_models(_shared_folder) -> dict[str, Path]:
    """One tiny base model per tokenizer family, built once per test run (shared by the workers)."""
    return {family: built_once(("tiny-model", family), lambda folder, f=family: build_tiny_model(folder / f, f)) / family
            for family in FAMILIES}


class _FinishedProjects(Mapping):
    """family -> a tiny project run through every step, built the first time a test asks for that family
    (once per run, shared by the workers). Treat as read-only."""

    def __init__(self, models: dict[str, Path]):
        self._models = models

    def __getitem__(self, family: str) -> Path:
        from langbuild import pipeline
        from langbuild.core.project import Project

        def build(folder: Path) -> None:
            make_tiny_project(folder / family, self._models[family])
            pipeline.run(Project(folder / family), Console(quiet=True))

        return built_once(("finished", family, str(self._models[family])), build) / family

    def __iter__(self):
        return iter(FAMILIES)

    def __len__(self) -> int:
        return len(FAMILIES)


@pytest.fixture(scope="session")
def finished_projects(tiny_models) -> Mapping[str, Path]:
    return _FinishedProjects(tiny_models)


@pytest.fixture(scope="session")
def taught_model(_shared_folder) -> Path:
    """A tiny byte-level model that has seen some Chichewa (see teach_tiny_model); built once per run."""
    def build(folder: Path) -> None:
        teach_tiny_model(build_tiny_model(folder / "gpt2-bytelevel", "gpt2-bytelevel"), chichewa_split()[0])

    return built_once(("taught", "gpt2-bytelevel"), build) / "gpt2-bytelevel"
