"""``python -m langbuild ARGS`` as a process of its own per command, without paying for the imports in each.

A fresh interpreter spends ~2.5 s importing torch and transformers before langbuild does anything; a
suite that runs the CLI once per error path pays that again and again. Here one server process imports
langbuild and those libraries once, then forks a child per command. Each child is a real process, as
``subprocess.run([sys.executable, "-m", "langbuild", *args], cwd=..., stdin=DEVNULL, capture_output=True)``
would start it: its own working folder, stdin at /dev/null, stdout and stderr captured at the descriptor
level (whatever any library writes there counts), ``langbuild/__main__.py`` run as ``__main__``, a normal
interpreter exit (atexit handlers, buffers flushed), and its real exit status (negative for a signal).

What a child cannot have is an environment of its own when the libraries are imported: variables they
read only then (HF_HOME, HF_HUB_OFFLINE, OMP_NUM_THREADS, TOKENIZERS_PARALLELISM, ...) are the server's.
``ForkedCli.run`` therefore changes only variables that langbuild reads when it uses them
(``READ_WHEN_USED``) and refuses any other change; a test that needs one, a sitecustomize, or the
command's own process tree as psutil sees it (the server is its parent) starts a fresh interpreter.

``ForkedCli.run`` runs a command to its end, like ``subprocess.run``; ``ForkedCli.start`` returns it
running, like ``subprocess.Popen`` (poll, send_signal, kill, wait), for tests that kill it at a moment.

The server forks from a single thread and never runs torch itself (no thread pools exist to be broken by
the fork). It reads one JSON request per line on stdin and answers on stdout with two JSON lines: the
child's pid, then how it ended. One command runs at a time.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Environment variables langbuild reads each time it needs them, not when a library is imported: a
# forked child may set these per command (core/errors.py, core/faults.py, pipeline.py).
READ_WHEN_USED = frozenset({"LANGBUILD_DEBUG", "LANGBUILD_CRASH_AT", "LANGBUILD_CHECK_SETTINGS"})

# What the steps import when they run (loading models and tokenizers): the costly part of a fresh process.
PRELOAD = ("langbuild.cli", "langbuild.pipeline", "torch", "transformers", "safetensors.torch", "tokenizers")
PRELOAD_ATTRIBUTES = ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM", "GPT2LMHeadModel", "LlamaForCausalLM",
                      "PreTrainedTokenizerFast")


class ForkedCli:
    """A server that runs langbuild commands in forked children; close it (or use ``with``) when done."""

    def __init__(self, env: Mapping[str, str] | None = None):
        self.env = dict(os.environ if env is None else env)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH", "")]))
        self._scratch = Path(tempfile.mkdtemp(prefix="langbuild-forked-cli-"))
        self._count = 0
        self._log = open(self._scratch / "server.log", "a+")  # the server's own stderr, for a crash report
        self._server = subprocess.Popen(
            [sys.executable, "-c", "from tests.forked_cli import serve; serve()"], cwd=REPO, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._ready = False  # the server says so once its imports are done: servers started together import together
        self._running: ForkedProcess | None = None

    def takes(self, env: Mapping[str, str] | None) -> bool:
        """Whether a command can run here with ``env``: it changes only variables read when used."""
        return self._changes(env).keys() <= READ_WHEN_USED

    def _changes(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {name: str(value) for name, value in (env or {}).items() if self.env.get(name) != str(value)}

    def run(self, args: Sequence[str], cwd: Path | str, env: Mapping[str, str] | None = None,
            file_size_limit: int | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        """``python -m langbuild *args`` in ``cwd``, to its end; ``file_size_limit`` (bytes) makes bigger
        writes fail as on a full disk. Raises subprocess.TimeoutExpired after ``timeout`` seconds (the
        command is killed)."""
        process = self.start(args, cwd, env, file_size_limit, timeout)
        process.wait()
        if process.timed_out:
            raise subprocess.TimeoutExpired(process.args, timeout, process.stdout, process.stderr)
        return subprocess.CompletedProcess(process.args, process.returncode, process.stdout, process.stderr)

    def start(self, args: Sequence[str], cwd: Path | str, env: Mapping[str, str] | None = None,
              file_size_limit: int | None = None, timeout: float = 600) -> ForkedProcess:
        """The command started, as ``subprocess.Popen`` would: poll it, signal it, wait for it. A server runs
        one command at a time: wait for this one before starting the next."""
        changes = self._changes(env)
        if not changes.keys() <= READ_WHEN_USED:
            raise ValueError(f"{sorted(changes.keys() - READ_WHEN_USED)} may be read when a library is imported, "
                             "before a forked child starts: run this command in a fresh subprocess")
        if self._running is not None and self._running.returncode is None:
            raise RuntimeError("the previous command has not been waited for")
        if not self._ready:
            self._wait_until_ready()
        self._count += 1
        outputs = self._scratch / f"{self._count}.out", self._scratch / f"{self._count}.err"
        request = {"args": [str(a) for a in args], "cwd": str(cwd), "env": changes, "stdout": str(outputs[0]),
                   "stderr": str(outputs[1]), "file_size_limit": file_size_limit, "timeout": timeout}
        self._server.stdin.write(json.dumps(request) + "\n")
        self._server.stdin.flush()
        self._running = ForkedProcess(self, self._answer()["pid"], [sys.executable, "-m", "langbuild", *request["args"]],
                                      outputs)
        return self._running

    def _wait_until_ready(self) -> None:
        """Fails when importing printed anything on stderr: a fresh process that imports the same would
        show it to the user, and a forked child would hide it from the test."""
        self._answer()
        self._log.seek(0)
        noise = self._log.read()
        if noise.strip():
            raise RuntimeError(f"importing {', '.join(PRELOAD)} printed on stderr: {noise[-3000:]}")
        self._ready = True

    def _answer(self) -> dict:
        line = self._server.stdout.readline()
        if not line:
            self._log.seek(0)
            raise RuntimeError(f"the forked-CLI server died: {self._log.read()[-3000:]}")
        return json.loads(line)

    def close(self) -> None:
        if self._running is not None and self._running.returncode is None and self._server.poll() is None:
            self._running.kill()  # a test that failed half-way: end its command first
            self._running.wait()
        if self._server.poll() is None:
            self._server.stdin.close()  # end of requests: the server exits
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        self._server.stdout.close()
        self._log.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> ForkedCli:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ForkedProcess:
    """One command of a ForkedCli, as much of ``subprocess.Popen`` as the tests use. Signals go through a
    pidfd, so they can never reach another process that reused the number."""

    def __init__(self, cli: ForkedCli, pid: int, args: list[str], outputs: tuple[Path, Path]):
        self._cli, self.pid, self.args, self._outputs = cli, pid, args, outputs
        self.returncode: int | None = None
        self.timed_out = False
        self.stdout = self.stderr = ""
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone: the server has its status
            self._pidfd = None

    def poll(self) -> int | None:
        import select

        if self.returncode is None and (self._pidfd is None or select.select([self._pidfd], [], [], 0)[0]):
            self._collect()
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self._collect()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        import signal

        if self.returncode is None and self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signum)
            except ProcessLookupError:  # it has just ended
                pass

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    def _collect(self) -> None:
        """The server's word on how the command ended, and what it printed."""
        answer = self._cli._answer()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.stdout, self.stderr = (path.read_text(encoding="utf-8", errors="replace") for path in self._outputs)
        for path in self._outputs:
            path.unlink()
        self.timed_out = answer["timed_out"]
        self.returncode = answer["returncode"]


class SessionServer:
    """A ForkedCli for tests that run single commands, started on first use and closed when the test
    session ends (tests/conftest.py sets ``env``, the environment at the session's start, before any
    test changes it)."""

    def __init__(self):
        self.env: dict[str, str] | None = None
        self._cli: ForkedCli | None = None

    def get(self) -> ForkedCli:
        if self._cli is None:
            self._cli = ForkedCli(self.env)
        return self._cli

    def close(self) -> None:
        if self._cli is not None:
            self._cli.close()
            self._cli = None


SESSION = SessionServer()


# ---------------------------------------------------------------------- the server process

def serve() -> None:
    """Import once, then fork a child per request line."""
    _preload()
    gc.freeze()  # what the server holds stays out of the children's garbage collections (no pages copied)
    _reply({"ready": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become(request)  # never returns: the child exits with the command's status
        _reply({"pid": pid})
        _reply(_wait(pid, request["timeout"]))


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    transformers = sys.modules["transformers"]
    for name in PRELOAD_ATTRIBUTES:  # transformers resolves these (and their modules) lazily
        getattr(transformers, name)
    from langbuild.corpus.langid import py3langid_codes

    py3langid_codes()  # read once per process, as a corpus step would: here once for every child


def _reply(answer: dict) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()  # also leaves nothing buffered for a child to inherit and print twice


def _become(request: dict) -> None:
    import resource
    import runpy

    os.chdir(request["cwd"])
    os.environ.update(request["env"])
    _point(0, os.devnull, os.O_RDONLY)  # stdin not a terminal, at end of input
    _point(1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    _point(2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    if request["file_size_limit"]:
        # Writes past the limit fail with EFBIG, as on a full disk (Python ignores SIGXFSZ).
        resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_size_limit"],) * 2)
    sys.argv = ["-m", *request["args"]]  # run_module puts the path of langbuild/__main__.py first, as -m does
    try:
        runpy.run_module("langbuild", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit:
        code = _exit_code(exit.code)
    except BaseException:  # what the interpreter does with an exception nothing caught
        sys.excepthook(*sys.exc_info())
        code = 1
    _end(code)


def _exit_code(code) -> int:
    """SystemExit's argument as the interpreter turns it into a status: None is 0, text is printed and 1."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def _end(code: int) -> None:
    """Exit as the interpreter does (wait for threads, atexit handlers, flush), minus tearing down every
    module: that touches each object the server imported, and copying those pages costs a second per child."""
    import atexit
    import threading

    threading._shutdown()  # what Python does first at exit: wait for the threads that are not daemons
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _point(fd: int, path: str, flags: int) -> None:
    opened = os.open(path, flags, 0o644)
    os.dup2(opened, fd)
    os.close(opened)


def _wait(pid: int, timeout: float) -> dict:
    """The child's exit status as subprocess reports it; killed (SIGKILL) after ``timeout`` seconds."""
    import select
    import signal

    pidfd = os.pidfd_open(pid)
    try:
        finished = select.select([pidfd], [], [], timeout)[0]
    finally:
        os.close(pidfd)
    if not finished:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return {"returncode": os.waitstatus_to_exitcode(status), "timed_out": not finished}
