"""One process of a multi-process run: ``python -m langbuild.training.worker checkpoints/plan.json``,
started by ``accelerate launch`` (see ``launch.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from ..core.atomic import atomic_write_text
from ..core.errors import LangbuildError
from ..core.processes import die_with_parent
from .launch import ERROR
from .loop import Trainer
from .plan import TrainPlan


def main(plan_path: str) -> int:
    die_with_parent()  # when the launcher goes (kill -9 of langbuild), this process goes too
    path = Path(plan_path)
    plan = TrainPlan.from_json(path.read_text(encoding="utf-8"))
    try:
        Trainer(plan, Console(stderr=False)).run()
    except LangbuildError as err:
        atomic_write_text(path.parent / ERROR, str(err))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
