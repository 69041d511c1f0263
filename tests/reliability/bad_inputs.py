"""Bad input across every step: each case must end in one clear line, a non-zero exit, no traceback,
and leave everything already produced exactly as it was.

Every case starts from a copy of a finished tiny project, so there is something to lose: it breaks
one thing (an input file, a setting, the lock, a model folder, the disk), runs the real CLI in a
process of its own, and compares every file of the project before and after. A few cases are not
errors but things langbuild recovers from (a damaged checkpoint, junk in other scripts); they must
succeed.

The processes are forked from a server that imported langbuild, torch and transformers once
(tests/forked_cli.py), so that a case does not pay ~2.5 s of imports; a case that needs a hub cache
of its own gets a fresh interpreter.

``run_cases`` is shared by tests/reliability/test_bad_inputs.py and benchmarks/reliability.py.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

import tomlkit

from tests.forked_cli import ForkedCli
from tests.reliability.faults import child_env


@dataclass(frozen=True)
class Case:
    name: str
    step: str                              # the step (or "cli") the bad input reaches
    prepare: Callable[[Path], None]        # breaks something in a copy of a finished project
    expect: str                            # words the error line must contain (lower case)
    args: tuple[str, ...] = ("run",)       # the command; -C PROJECT is added unless bare
    bare: bool = False                     # the command takes no -C
    condition: str = ""                    # "read-only" or "full-disk": how the command runs
    recovers: bool = False                 # langbuild should cope and succeed, printing `expect`
    verify: Callable[[Path], str] | None = None  # after a recovery: '' or what is wrong
    runs_langbuild: bool = False           # prepare(project, cli) runs a command itself: forked by cli if given


@dataclass
class Outcome:
    case: Case
    ran: bool = True
    exit_code: int = 0
    clean_error: bool = False
    intact: bool = False
    message: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.ran and self.clean_error and self.intact


# ---------------------------------------------------------------------- helpers for cases

def set_setting(project: Path, key: str, value) -> None:
    """Write a setting straight into langbuild.toml, without langbuild's validation (that is the point)."""
    path = project / "langbuild.toml"
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    section, _, name = key.partition(".")
    if section not in doc:
        doc.add(section, tomlkit.table())
    doc[section][name] = value
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


def corpus_file(name: str, data: bytes) -> Callable[[Path], None]:
    def prepare(project: Path) -> None:
        (project / "data" / name).write_bytes(data)
        set_setting(project, "corpus.paths", [f"data/{name}"])
    return prepare


def setting(key: str, value) -> Callable[[Path], None]:
    return lambda project: set_setting(project, key, value)


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def prepare(project: Path) -> None:
        for step in steps:
            step(project)
    return prepare


def model_copy(project: Path, change: Callable[[Path], None]) -> None:
    """A damaged copy of the project's base model becomes the only candidate."""
    doc = tomlkit.parse((project / "langbuild.toml").read_text(encoding="utf-8"))
    original = Path(str(doc["select"]["candidates"][0]))
    copy = project.parent / "model"
    shutil.copytree(original, copy)
    change(copy)
    set_setting(project, "select.candidates", [str(copy)])


def damaged_model(change: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda project: model_copy(project, change)


def truncate(path: Path, keep: int = 1000) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def pickle_only(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")


def remote_code(folder: Path) -> None:
    """A model type transformers does not know, with code that would run if allowed."""
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evilgpt"
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")


def interrupted_download(project: Path) -> None:
    """A hub cache whose model file stopped halfway (what a dropped connection leaves), used offline."""
    doc = tomlkit.parse((project / "langbuild.toml").read_text(encoding="utf-8"))
    original = Path(str(doc["select"]["candidates"][0]))
    revision = "0" * 40
    repo = project.parent / "hf-home/hub/models--someone--tiny-model"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(original, snapshot)
    truncate(snapshot / "model.safetensors", 4096)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text(revision)
    (repo / "blobs").mkdir()
    (repo / "blobs/deadbeef.incomplete").write_bytes(b"\0" * 100)
    set_setting(project, "select.candidates", ["someone/tiny-model"])


def corrupt_checkpoint(project: Path, cli: ForkedCli | None) -> None:
    """Training re-opened (more steps), killed at its third checkpoint, and its newest checkpoint then damaged."""
    set_setting(project, "train.max_steps", 8)
    args, crash = ["run", "-C", str(project), "--until", "train"], {"LANGBUILD_CRASH_AT": "checkpoint:before-rename@3"}
    if cli is not None:
        result = cli.run(args, cwd=project, env=crash)
    else:
        result = subprocess.run([sys.executable, "-m", "langbuild", *args], env=child_env(**crash), capture_output=True)
    assert result.returncode < 0, result.stderr  # killed: the checkpoints of steps 2 and 4 are on disk
    newest = sorted((project / ".langbuild/staging/train/checkpoints").glob("step-*"))[-1]
    (newest / "model.safetensors").write_bytes(b"not a safetensors file")


def cut_off_gzip(project: Path) -> None:
    """A compressed corpus file cut off halfway, as an interrupted download leaves it."""
    data = gzip.compress((project / "data/train.txt").read_bytes())
    (project / "data/train.txt.gz").write_bytes(data[: len(data) // 2])
    set_setting(project, "corpus.paths", ["data/train.txt.gz"])


def huge_line(project: Path) -> None:
    with open(project / "data/huge.txt", "wb") as handle:
        chunk = b"mawu a Mulungu " * 70_000  # about 1 MB per write, one line throughout
        for _ in range(100):
            handle.write(chunk)
        handle.write(b"\n")
    set_setting(project, "corpus.paths", ["data/huge.txt"])


def mixed_scripts(project: Path) -> None:
    """The Chichewa corpus plus lines of Cyrillic, Han and Arabic junk: the junk goes, the rest stays."""
    rng = random.Random(0)
    alphabets = ["абвгдеёжзийклмнопрст", "的一是不了人我在有他这中大来上", "ابتثجحخدذرزسشصضطظعغ"]
    junk = [" ".join("".join(rng.choice(rng.choice(alphabets)) for _ in range(6)) for _ in range(12)) for _ in range(300)]
    lines = (project / "data/train.txt").read_text(encoding="utf-8").splitlines()
    (project / "data/mixed.txt").write_text("\n".join(lines + junk) + "\n", encoding="utf-8")
    set_setting(project, "corpus.paths", ["data/mixed.txt"])


def junk_removed(project: Path) -> str:
    from langbuild.corpus.shards import read_split

    kept = "\n".join(doc for split in ("train", "valid") for doc in read_split(project / "corpus", split))
    foreign = sum(kept.count(ch) for ch in "жзй的一是ثجح")
    return f"{foreign} junk characters kept" if foreign else ""


def symlink_out(project: Path) -> None:
    outside = project.parent / "outside"
    shutil.move(project / "report", outside)
    (project / "report").symlink_to(outside)
    set_setting(project, "project.name", "renamed")  # the report step re-runs and would replace 'report'


def bad_task_file(project: Path) -> None:
    (project / "data/task.jsonl").write_text('{"kind": "cloze", "context": "x"\n')
    set_setting(project, "eval.tasks", ["data/task.jsonl"])


def corrupt_lock(project: Path) -> None:
    (project / "langbuild.lock").write_text('{"version": 1, "steps": {"corpus": ')


def export_into_project(project: Path) -> None:
    (project / "somewhere").mkdir()
    (project / "somewhere/keep.txt").write_text("mine")


# ---------------------------------------------------------------------- the cases

CASES: tuple[Case, ...] = (
    # corpus
    Case("empty-file", "corpus", corpus_file("empty.txt", b""), "no training documents"),
    Case("binary-file", "corpus", corpus_file("blob.txt", bytes(range(256)) * 40), "binary"),
    Case("non-utf8", "corpus", corpus_file("latin1.txt", "Mulungu anati: ndiye café olé\n".encode("latin-1") * 50),
         "not utf-8"),
    Case("utf16", "corpus", corpus_file("utf16.txt", "Mulungu anati kwa Mose\n".encode("utf-16") * 50), "utf-16"),
    Case("100mb-single-line", "corpus", huge_line, "single document"),
    Case("cut-off-gzip", "corpus", cut_off_gzip, "ends early"),
    Case("bad-jsonl-line", "corpus", corpus_file("docs.jsonl", b'{"text": "Mulungu anati kwa Mose"}\n{"text": \n'),
         "not valid json"),
    Case("jsonl-without-text-field", "corpus", corpus_file("docs.jsonl", b'{"body": "Mulungu anati kwa Mose"}\n' * 20),
         "text field"),
    Case("missing-corpus-path", "corpus", setting("corpus.paths", ["data/nowhere.txt"]), "does not exist"),
    Case("language-id-method-without-the-language", "corpus", setting("langid.method", "py3langid"), "does not know 'nya'"),
    # Recoveries stop after the step that recovers: what follows is tested elsewhere, at a full run's price.
    Case("mixed-scripts", "corpus", mixed_scripts, "corpus: done", ("run", "--until", "corpus"), recovers=True,
         verify=junk_removed),
    Case("unknown-language-code", "config", setting("project.language", "qqq"), "unknown language code"),
    # tokenizer
    Case("vocab-below-minimum", "config", setting("tokenizer.vocab_size", 10), "at least 50"),
    Case("vocab-too-small-for-bytes", "tokenizer", setting("tokenizer.vocab_size", 60), "raise tokenizer.vocab_size"),
    Case("vocab-too-large", "tokenizer", setting("tokenizer.vocab_size", 5_000_000), "capped", ("run", "--until", "tokenizer"),
         recovers=True),
    Case("vocab-wrong-type", "config", setting("tokenizer.vocab_size", "lots"), "tokenizer.vocab_size"),
    # select
    Case("missing-model", "select", setting("select.candidates", ["models/nowhere"]), "cannot get model"),
    Case("folder-without-config", "select", damaged_model(lambda f: (f / "config.json").unlink()), "config.json"),
    Case("corrupt-config-json", "select", damaged_model(lambda f: (f / "config.json").write_text("{not json")), "config"),
    Case("truncated-weights", "select", damaged_model(lambda f: truncate(f / "model.safetensors")), "model"),
    Case("pickle-only-weights", "select", damaged_model(pickle_only), "safetensors"),
    Case("custom-code-model-without-flag", "select", damaged_model(remote_code), "project.trust_remote_code"),
    Case("interrupted-download", "select", interrupted_download, "download looks incomplete"),
    Case("offline-hub-model", "select", setting("select.candidates", ["someone/not-cached"]), "offline"),
    # extend
    Case("unknown-init", "config", setting("extend.init", "magic"), "extend.init"),
    Case("wechsel-without-vectors", "config", setting("extend.init", "wechsel"), "extend.init = wechsel needs"),
    Case("wechsel-vectors-missing", "extend",
         both(setting("extend.source_vectors", "data/missing.vec"), setting("extend.target_vectors", "data/missing.vec"),
              setting("extend.dictionary", "data/missing.txt"), setting("extend.init", "wechsel")), "missing"),
    Case("negative-new-tokens", "config", setting("extend.num_new_tokens", -5), "extend.num_new_tokens"),
    # train
    Case("learning-rate-wrong-type", "config", setting("train.learning_rate", "fast"), "train.learning_rate"),
    Case("zero-sequence-length", "config", setting("train.seq_len", 0), "train.seq_len"),
    Case("corrupt-checkpoint", "train", corrupt_checkpoint, "unreadable", ("run", "--until", "train"), recovers=True,
         runs_langbuild=True),
    # eval
    # By design a task that cannot run is skipped and named in the report; the rest of eval goes on.
    Case("unknown-task", "eval", setting("eval.tasks", ["cloze", "no_such_benchmark_xyz"]), "skipped no_such_benchmark_xyz",
         recovers=True),
    Case("malformed-task-file", "eval", bad_task_file, "skipped data/task.jsonl", recovers=True),
    Case("missing-source-text", "eval", setting("eval.source_text", "data/missing-english.txt"), "missing-english.txt"),
    # the project folder and the CLI
    Case("invalid-toml", "config", lambda p: (p / "langbuild.toml").write_text("[corpus\npaths = 3\n"), "langbuild.toml"),
    Case("unknown-setting", "config", setting("train.lerning_rate", 0.1), "lerning_rate"),
    Case("corrupt-lock", "project", corrupt_lock, "corrupt"),
    Case("symlink-outside-project", "report", symlink_out, "symbolic link"),
    Case("read-only-project", "project", setting("project.name", "renamed"), "cannot write", condition="read-only"),
    Case("disk-full", "report", setting("project.name", "renamed"), "no space left", condition="full-disk"),
    Case("not-a-project", "cli", lambda p: None, "not a langbuild project", args=("run", "-C", "/"), bare=True),
    Case("unknown-flag", "cli", lambda p: None, "--bogus", args=("run", "--bogus")),
    Case("unknown-step", "cli", lambda p: None, "unknown step", args=("run", "--until", "bake")),
    Case("export-over-a-folder", "export", export_into_project, "somewhere", args=("export", "somewhere")),
)


# ---------------------------------------------------------------------- running them

def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root``, following links, except langbuild's own state and the hub cache."""
    digest = {}
    for folder, _, files in os.walk(root, followlinks=True):
        for name in files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel.startswith(("project/.langbuild/", "hf-home/")) or rel == "project/langbuild.lock":
                continue
            digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def lock_entries(project: Path) -> dict[str, dict] | None:
    try:
        return json.loads((project / "langbuild.lock").read_text())["steps"]
    except (OSError, ValueError, KeyError):
        return None


def rerun_steps(before: dict[str, dict] | None, after: dict[str, dict] | None) -> set[str]:
    """Steps the command ran to success with new inputs: their folders may change, as they should."""
    if before is None or after is None:
        return set()
    return {step for step, entry in after.items()
            if entry.get("fingerprint") and entry["fingerprint"] != (before.get(step) or {}).get("fingerprint")}


def check_intact(folder: Path, before: dict[str, str], locks: tuple[dict | None, dict | None]) -> str:
    """'' when nothing was lost; else what changed. Files of steps that re-ran must match the lock."""
    from langbuild.core.hashing import hash_tree

    project = folder / "project"
    rerun = rerun_steps(*locks)
    after = tree_digest(folder)
    rerun_folders = tuple(f"project/{step}/" for step in rerun)
    changed = sorted(k for k in before.keys() | after.keys()
                     if before.get(k) != after.get(k) and not k.startswith(rerun_folders))
    for step in sorted(rerun):
        recorded = locks[1][step].get("outputs")
        if hash_tree(project / step, skip=("checkpoints",)) != recorded:
            changed.append(f"{step}/ does not match its lock record")
    before_lock, after_lock = locks
    if before_lock is not None:
        lost = [step for step, entry in before_lock.items()
                if entry.get("fingerprint") and step not in rerun and (after_lock or {}).get(step, {}).get("fingerprint")
                != entry["fingerprint"]]
        changed += [f"the lock forgot {step}" for step in lost]
    return ", ".join(changed[:6])


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[bool]:
    """The folder read-only for the command: a read-only bind mount as root (root ignores modes), else chmod."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for path in modes:
            path.chmod(modes[path] & ~0o222)
        try:
            yield True
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True)


def _file_size_limit(limit: int) -> Callable[[], None]:
    # A file-size limit makes writes fail as on a full disk (EFBIG; Python ignores SIGXFSZ).
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


FULL_DISK_LIMIT = 64 * 1024  # bytes a "full-disk" command may write to any one file


def run_command(case: Case, args: list[str], folder: Path, cli: ForkedCli | None) -> subprocess.CompletedProcess:
    """The case's command in a process of its own: forked by ``cli``, or a fresh interpreter when there is
    no server or the case prepared a hub cache of its own (HF_HOME is read when huggingface_hub is
    imported, which the server did long before)."""
    project = folder / "project"
    limit = FULL_DISK_LIMIT if case.condition == "full-disk" else None
    if cli is not None and not (folder / "hf-home").exists():
        return cli.run(args, cwd=project, file_size_limit=limit, timeout=600)
    return subprocess.run([sys.executable, "-m", "langbuild", *args], cwd=project, capture_output=True, text=True,
                          env=child_env(HF_HOME=str(folder / "hf-home")),
                          preexec_fn=_file_size_limit(limit) if limit else None, timeout=600)


def run_case(case: Case, finished: Path, workdir: Path, cli: ForkedCli | None = None) -> Outcome:
    folder = workdir / case.name
    project = folder / "project"
    shutil.copytree(finished, project, symlinks=True)
    case.prepare(project, cli) if case.runs_langbuild else case.prepare(project)
    before, lock_before = tree_digest(folder), lock_entries(project)
    args = list(case.args) if case.bare else [*case.args, "-C", str(project)]
    outcome = Outcome(case)
    with contextlib.ExitStack() as stack:
        if case.condition == "read-only" and not stack.enter_context(read_only(project)):
            outcome.ran, outcome.note = False, "no read-only mount here (root ignores file modes)"
            return outcome
        result = run_command(case, args, folder, cli)
    outcome.exit_code = result.returncode
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    outcome.message = (lines or result.stdout.strip().splitlines() or [""])[-1]
    if case.recovers:
        problem = case.verify(project) if case.verify and result.returncode == 0 else ""
        outcome.clean_error = result.returncode == 0 and case.expect in result.stdout.lower() and not problem
        outcome.message = f"succeeded; {case.expect!r} in its output" if outcome.clean_error else problem or result.stderr[-500:]
    else:
        outcome.clean_error = (result.returncode > 0 and len(lines) == 1 and lines[0].startswith("error")
                               and "Traceback" not in result.stderr and case.expect in lines[0].lower())
        if not outcome.clean_error and len(lines) != 1:
            outcome.note = f"{len(lines)} stderr lines: " + " | ".join(lines[-4:])[-600:]
    problem = check_intact(folder, before, (lock_before, lock_entries(project)))
    outcome.intact = not problem
    if problem:
        outcome.note += f" changed: {problem}"
    return outcome


def run_cases(finished: Path, cases: tuple[Case, ...] = CASES, workers: int = 2) -> list[Outcome]:
    """Every case, ``workers`` at a time, each worker thread with a forked-CLI server of its own."""
    workdir = Path(tempfile.mkdtemp(prefix="langbuild-bad-inputs-"))
    # One hub cache for the server's commands, empty as each case's own was: nothing is cached, and
    # HF_HUB_OFFLINE (child_env) keeps it so.
    env = child_env(HF_HOME=str(workdir / "hf-home"))
    servers: Queue[ForkedCli] = Queue()
    try:
        for _ in range(workers):
            servers.put(ForkedCli(env))

        def run(case: Case) -> Outcome:
            cli = servers.get()
            try:
                return run_case(case, finished, workdir, cli)
            finally:
                servers.put(cli)

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, cases))
    finally:
        while not servers.empty():
            servers.get().close()
        shutil.rmtree(workdir, ignore_errors=True)


def markdown_table(outcomes: list[Outcome]) -> str:
    lines = ["| case | step | exit | clean error | outputs intact | the line the user sees |", "|---|---|---:|---|---|---|"]
    for o in outcomes:
        shown = (o.message or o.note).replace("|", "\\|")[:160]
        lines.append(f"| {o.case.name} | {o.case.step} | {o.exit_code if o.ran else '—'} | "
                     f"{('recovered' if o.case.recovers else 'yes') if o.clean_error else 'NO' if o.ran else 'not run'} | "
                     f"{'yes' if o.intact else 'NO' if o.ran else '—'} | {shown} |")
    ran = [o for o in outcomes if o.ran]
    lines.append(f"| **{len(outcomes)} tried, {len(ran)} ran** | | | **{sum(o.clean_error for o in ran)}** | "
                 f"**{sum(o.intact for o in ran)}** | |")
    return "\n".join(lines)
