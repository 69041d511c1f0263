"""Several processes through ``accelerate launch``: no home-made launcher.

The parent writes the plan to ``checkpoints/plan.json`` and starts ``accelerate launch -m
langbuild.training.worker``; every process runs the same loop on its slice of each global batch,
with DDP (through accelerate) or FSDP (torch's ``fully_shard``, see ``sharding.py``: accelerate's
FSDP refuses CPUs, so the launch is the same for both and the loop shards the model itself).
On a machine without GPUs the processes run on the CPU with the gloo backend: accelerate's
``--multi_gpu`` launcher with ``ACCELERATE_USE_CPU=true`` (STACK.md: ``--cpu`` alone starts one
process). A worker that fails with a user error writes it to ``checkpoints/launch-error.txt``, which
the parent raises as its own one-line error.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from ..core.atomic import atomic_write_text
from ..core.config import FSDP_WITHOUT_FP16
from ..core.errors import LangbuildError
from ..core.processes import tied_to_this_process
from .plan import TrainPlan

PLAN = "plan.json"
ERROR = "launch-error.txt"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(plan_path: Path, processes: int, gpus: bool) -> tuple[list[str], dict[str, str]]:
    """The argument list (never a shell string) and environment of the launch."""
    # The launcher dies with langbuild (a kill -9 must not leave it training), and each training
    # process with the launcher (worker.py).
    command = tied_to_this_process("accelerate.commands.launch", "--num_processes", str(processes),
                                   "--num_machines", "1", "--main_process_port", str(_free_port()),
                                   "--mixed_precision", "no", "--dynamo_backend", "no")
    env = dict(os.environ)
    command.append("--multi_gpu")  # starts the processes and their process group; the plan says ddp or fsdp
    if not gpus:
        env["ACCELERATE_USE_CPU"] = "true"
    command += ["-m", "langbuild.training.worker", str(plan_path)]
    return command, env


def check_processes(processes: int) -> None:
    """More processes than devices (GPUs, or CPU cores without GPUs) is a setting to fix, not to try."""
    import torch

    if torch.cuda.is_available():
        available, kind = torch.cuda.device_count(), "GPUs"
    else:
        available, kind = os.cpu_count() or 1, "CPU cores and no GPU"
    if processes > available:
        raise LangbuildError(f"train.num_processes={processes} is more than this machine's {available} {kind}: "
                             f"lower it (--num-processes {available})")


def check_launcher(launcher: str, precision: str) -> None:
    if launcher == "fsdp" and precision == "fp16":
        raise LangbuildError(FSDP_WITHOUT_FP16)  # the plan's resolved precision, after the settings' rule


def launch(plan: TrainPlan, folder: Path) -> dict:
    """Run ``plan`` in ``plan.num_processes`` processes; returns the summary rank 0 wrote."""
    import torch

    plan_path, error_path = folder / PLAN, folder / ERROR
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan_path, plan.to_json())
    error_path.unlink(missing_ok=True)
    command, env = launch_command(plan_path, plan.num_processes, torch.cuda.is_available())
    code = subprocess.run(command, env=env).returncode
    if error_path.is_file():
        raise LangbuildError(error_path.read_text(encoding="utf-8").strip())
    if code != 0:
        raise LangbuildError(f"the {plan.num_processes}-process training run failed (exit code {code}; its output is above): "
                             "rerun to resume from the last checkpoint, or set train.num_processes = 1")
    return json.loads((Path(plan.out) / "summary.json").read_text(encoding="utf-8"))
