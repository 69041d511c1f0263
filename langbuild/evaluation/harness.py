"""Running lm-evaluation-harness (as a library) on a model already in memory, with its request cache.

One ``simple_evaluate`` call scores all local tasks of a model; each built-in task gets its own call,
so a task whose data cannot be had (offline, no local copy) is skipped with one line while the others
run. Model outputs are cached by lm-eval's CachingLM in a SQLite file per model identity (a hash of
its weights and tokenizer files): a re-run of eval on the same models answers from the cache.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..core.environment import is_offline, offline_variables_set
from ..core.errors import one_line
from ..core.progress import pinned_console
from . import bootstrap
from .local_tasks import LocalTask

# Per-item fields lm-eval logs for each metric, in order of preference when a task names none.
PRIMARY_METRICS = ("acc", "acc_norm", "exact_match", "bits_per_byte", "f1", "chrf", "bleu", "mcc")
LOWER_IS_BETTER = {"bits_per_byte", "byte_perplexity", "word_perplexity", "perplexity", "ter"}


@dataclass
class TaskScore:
    metric: str
    value: float
    interval: tuple[float, float] | None
    items: int
    per_item: list = field(default_factory=list, repr=False)  # kept for paired comparisons between models
    num_fewshot: int = 0  # examples lm-eval put before each item, as it reports them ("n-shot")

    def as_json(self) -> dict:
        return {"value": self.value, "interval": list(self.interval) if self.interval else None, "items": self.items}


@contextlib.contextmanager
def quiet_lm_eval() -> Iterator[None]:
    """lm-eval draws progress bars and logs per request batch; langbuild prints its own progress.

    Its bars are tqdm's, which read TQDM_DISABLE only at import, so both output streams are captured
    instead. Errors still surface: they are exceptions, raised past this block.
    """
    loggers = [logging.getLogger(name) for name in ("lm_eval", "lm-eval", "datasets", "filelock")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def make_lm(model, tokenizer, batch_size: int, console=None):
    """lm-eval's HFLM over the model in memory, answering requests without HFLM's wasted passes
    (``request_scorer``) and showing their progress on ``console``."""
    from .request_scorer import make_shared_prefix_lm

    # Requests are answered inside quiet_lm_eval, which captures sys.stdout: the bars print where stdout is now.
    console = pinned_console(console)
    with quiet_lm_eval():
        return make_shared_prefix_lm(model, tokenizer, batch_size, console)


# How often the request cache is written to disk while answers come in: a killed run loses at most this
# much work. lm-eval's own store commits after every answer, and each write records the caller's stack:
# a third of simple_evaluate's time on a tiny model (4.4 -> 2.9 s for three models, AVX2 EPYC, 1 thread).
COMMIT_EVERY_S = 1.0


def _request_store(path: Path):
    """A SqliteDict for lm-eval's request cache that commits at most every COMMIT_EVERY_S seconds (and on close)."""
    import time

    from sqlitedict import SqliteDict

    class RequestStore(SqliteDict):
        def __init__(self):
            super().__init__(str(path), autocommit=False, outer_stack=False)
            self._committed = time.monotonic()

        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            if time.monotonic() - self._committed > COMMIT_EVERY_S:
                self.commit(blocking=False)  # queued behind the write on the store's own thread
                self._committed = time.monotonic()

    return RequestStore()


@contextlib.contextmanager
def _request_cache_committed_in_batches() -> Iterator[None]:
    """Within this block, the CachingLM that simple_evaluate wraps around the model (its ``use_cache``)
    keeps answers in ``_request_store``; each store is committed and closed on the way out, an
    exception included (a SqliteDict collected unclosed drops what it has not committed)."""
    import lm_eval.api.model as lm_model

    original, stores = lm_model.CachingLM, []

    class BatchedCachingLM(original):
        def __init__(self, lm, cache_db: str):
            super().__init__(lm, cache_db)
            self.dbdict.close()  # lm-eval's own store, committing per answer
            self.dbdict = _request_store(Path(cache_db))
            stores.append(self.dbdict)
            lm.set_cache_hook(self.get_cache_hook())  # the hook holds the store it was made with

    lm_model.CachingLM = BatchedCachingLM  # simple_evaluate looks it up on the module when it runs
    try:
        yield
    finally:
        lm_model.CachingLM = original
        for store in stores:
            store.commit()
            store.close()


def _evaluate(lm, tasks: list[str], task_manager, cache_file: Path | None, limit: int, seed: int, num_fewshot: int = 0) -> dict:
    import lm_eval.evaluator
    from lm_eval import simple_evaluate

    # lm-eval records the git commit of the current folder by running 'git describe', which prints
    # "fatal: not a git repository" to the terminal outside one. The field is meaningless here.
    lm_eval.evaluator.get_git_commit_hash = lambda: None
    # It also surveys the environment into every result (torch's collect_env: ~30 subprocesses, pip list
    # among them, ~0.6 s of CPU per call and one call per model and task group); langbuild reads none of
    # it and records lm-eval's version itself (metrics.json "lm_eval").
    lm_eval.evaluator.add_env_info = lambda results: None
    with quiet_lm_eval(), _request_cache_committed_in_batches():
        return simple_evaluate(
            lm, tasks=tasks, task_manager=task_manager, use_cache=str(cache_file) if cache_file else None,
            limit=limit or None, log_samples=True, bootstrap_iters=0, verbosity="ERROR",
            num_fewshot=num_fewshot,  # also 0: a task whose YAML asks for examples runs zero-shot unless told otherwise

            random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
        )


CORPUS_LEVEL = {"chrf", "chrf++", "bleu", "ter"}  # scored over the whole set: lm-eval logs (reference, prediction) per item


def _per_item(samples: list[dict], metric: str, filter_name: str) -> list:
    return [sample[metric] for sample in samples if metric in sample and sample.get("filter", "none") == filter_name]


def _interval(metric: str, values: list, samples: int, seed: int) -> tuple[float, float] | None:
    if not values or metric in CORPUS_LEVEL:  # no per-item mean to resample
        return None
    if isinstance(values[0], (tuple, list)):  # bits per byte: (log-likelihood, bytes) per document
        bits = [-float(ll) / math.log(2) for ll, _ in values]
        return bootstrap.ratio_interval(bits, [float(n) for _, n in values], samples=samples, seed=seed)
    return bootstrap.mean_interval([float(v) for v in values], samples=samples, seed=seed)


def _metric_keys(result: dict, metric: str | None) -> list[tuple[str, str]]:
    """(metric, filter) pairs present in a task's result, the unfiltered one first: keys read 'acc,none',
    'exact_match,flexible-extract', ..."""
    found = [tuple(key.split(",", 1)) for key, value in result.items()
             if "," in key and "_stderr" not in key and isinstance(value, (int, float))]
    wanted = [metric] if metric else list(PRIMARY_METRICS)
    return sorted((pair for pair in found if pair[0] in wanted), key=lambda p: (wanted.index(p[0]), p[1] != "none"))


def _score(result: dict, samples: list[dict], metric: str | None, bootstrap_samples: int, seed: int) -> TaskScore | None:
    for name, filter_name in _metric_keys(result, metric):
        per_item = _per_item(samples, name, filter_name)
        label = name if filter_name == "none" else f"{name} ({filter_name})"
        return TaskScore(label, float(result[f"{name},{filter_name}"]), _interval(name, per_item, bootstrap_samples, seed),
                         len(per_item) or int(result.get("sample_len", 0) or 0), per_item)
    return None


def _scores_of(output: dict, tasks: dict[str, str | None], bootstrap_samples: int, seed: int) -> dict[str, TaskScore]:
    """The primary metric of each requested task from one simple_evaluate output; groups read from 'groups'."""
    scores = {}
    for task, metric in tasks.items():
        result = output.get("results", {}).get(task) or output.get("groups", {}).get(task) or {}
        score = _score(result, output.get("samples", {}).get(task, []), metric, bootstrap_samples, seed)
        if score is not None:
            score.num_fewshot = int(output.get("n-shot", {}).get(task) or 0)
            scores[task] = score
    return scores


def run_local(lm, tasks: list[LocalTask], include_path: Path, cache_file: Path | None, limit: int = 0,
              bootstrap_samples: int = 1000, seed: int = 0, fewshot: dict[str, int] | None = None) -> dict[str, TaskScore]:
    """Every local task on one model, in one lm-eval call per few-shot count (``fewshot``: task → count, absent 0;
    the tasks' YAML files are in ``include_path``)."""
    from lm_eval.tasks import TaskManager

    if not tasks:
        return {}
    manager = TaskManager(include_path=str(include_path), include_defaults=False)
    by_shots: dict[int, list[LocalTask]] = {}
    for task in tasks:
        by_shots.setdefault((fewshot or {}).get(task.name, 0), []).append(task)
    scores = {}
    for shots, group in by_shots.items():
        output = _evaluate(lm, [t.name for t in group], manager, cache_file, limit, seed, num_fewshot=shots)
        scores.update(_scores_of(output, {t.name: t.metric for t in group}, bootstrap_samples, seed))
    return scores


def run_builtin(lm, task: str, task_manager, cache_file: Path | None, limit: int = 0, bootstrap_samples: int = 1000,
                seed: int = 0, num_fewshot: int = 0) -> tuple[TaskScore | None, str | None]:
    """One built-in lm-eval task: (score, None), or (None, the one-line reason it could not run)."""
    try:
        output = _evaluate(lm, [task], task_manager, cache_file, limit, seed, num_fewshot)
        score = _scores_of(output, {task: None}, bootstrap_samples, seed).get(task)
    except Exception as err:  # data unreachable, a task needing extra packages, ...: the other tasks still run
        return None, _reason(task, err)
    return score, None if score else f"{task}: lm-eval returned no score langbuild can read"


# Exception class names that mean the data could not be fetched (huggingface_hub, requests, datasets).
UNREACHABLE = ("Offline", "Connection", "Timeout", "HTTPError", "DatasetNotFound", "LocalEntryNotFound", "HfHubHTTP")


def hub_needed_message(task: str) -> str:
    """Why a built-in task cannot run offline, and the two ways out, in one line."""
    switches = offline_variables_set()
    if switches:
        names = switches[0] if len(switches) == 1 else f"{', '.join(switches[:-1])} and {switches[-1]}"
        why = f"{names} {'is' if len(switches) == 1 else 'are'} set"
    else:
        why = "no network, or HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set"
    return (f"{task}: its data comes from the Hugging Face hub, which is unavailable offline ({why}): "
            "run it once online so the datasets cache has it, write a local copy (python -m "
            "langbuild.evaluation.benchmark_data), or use a local .jsonl task in eval.tasks")


def _reason(task: str, err: Exception) -> str:
    chain = [err, err.__cause__, err.__context__]
    if is_offline() or any(any(word in type(e).__name__ for word in UNREACHABLE) for e in chain if e is not None):
        return hub_needed_message(task)
    return one_line(f"{task}: {type(err).__name__}: {err}")


def direction(metric: str) -> str:
    return "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
