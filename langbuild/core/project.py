"""The project folder: settings, lock, step folders, and the lock that keeps two runs apart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .config import CONFIG_NAME, Config, check_required, load_config
from .errors import LangbuildError
from .lock import LOCK_NAME, Lock

STATE_DIR = ".langbuild"


class Project:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        if not (self.root / CONFIG_NAME).is_file():
            raise LangbuildError(
                f"{self.root} is not a langbuild project (no {CONFIG_NAME}): "
                "create one with 'langbuild init DIR' or pass -C DIR"
            )
        self.config: Config = load_config(self.config_path)
        check_required(self.config, str(self.config_path))

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def step_dir(self, step: str) -> Path:
        return self.root / step

    def staging_dir(self, step: str) -> Path:
        return self.state_dir / "staging" / step

    @property
    def trash_dir(self) -> Path:
        return self.state_dir / "trash"

    def lock(self) -> Lock:
        return Lock(self.lock_path)

    def resolve_path(self, text: str) -> Path:
        """Paths in langbuild.toml are relative to the project folder."""
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else self.root / path

    def check_no_symlinks(self, step_names: list[str]) -> None:
        """Refuse step and state folders that are symbolic links.

        langbuild replaces a step folder whole and deletes what it replaced; through a link that
        would reach files outside the project, so a link is an error, not something to follow.
        """
        for path in [self.state_dir, *(self.step_dir(name) for name in step_names)]:
            if path.is_symlink():
                raise LangbuildError(
                    f"{path} is a symbolic link (to {os.readlink(path)}): langbuild writes and replaces step folders "
                    "only inside the project; remove the link (move the whole project to another disk instead)"
                )

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the project's run lock, so two langbuild runs never interleave their writes."""
        self.check_no_symlinks([])  # the run lock itself lives in .langbuild/
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.state_dir / "run.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise LangbuildError(
                f"another langbuild command is running on {self.root}: wait for it to finish, then retry"
            ) from None
        try:
            yield
        finally:
            lock.release()
