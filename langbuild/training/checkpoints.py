"""Resumable checkpoints: written to a temporary folder and renamed into place, so one exists only
once it is complete; a damaged newest one falls back to the one before it.

Each holds the trained module's weights (safetensors, shared tensors stored once), the optimizer
state (loaded back with ``weights_only=True``) and ``state.json`` (step, early-stopping state).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ..core.atomic import atomic_write_json, atomic_write_text
from ..core.errors import is_out_of_memory
from ..core.faults import crash_point

WEIGHTS = "model.safetensors"


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, newest first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.name.startswith("step-") and p.is_dir()), reverse=True)


def checkpoint_precision(folder: Path) -> str | None:
    """The precision the newest readable checkpoint in ``folder`` was trained in; None for a fresh run
    or a checkpoint written before it was recorded."""
    for path in checkpoints(folder):
        try:
            return json.loads((path / "state.json").read_text()).get("precision")
        except (OSError, ValueError):
            continue  # damaged: resume falls back to the one before it as well
    return None


def _write_weights(model, path: Path) -> None:
    """A module's weights, or a state dict already gathered (FSDP), as safetensors; a tied matrix
    (the same tensor under two names) is stored once, as ``safetensors.torch.save_model`` does."""
    from safetensors.torch import save_file, save_model

    if not isinstance(model, dict):
        save_model(model, str(path))
        return
    seen, unique = set(), {}
    for name, tensor in model.items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            unique[name] = tensor.contiguous()
    save_file(unique, str(path), metadata={"format": "pt"})


def save_checkpoint(folder: Path, step: int, model, optimizer, keep: int, state: dict | None = None) -> None:
    """Write checkpoint ``step``: ``model`` is a module or a gathered state dict, ``optimizer`` an
    optimizer or its (gathered) state dict."""
    import torch

    final = folder / f"step-{step:06d}"
    tmp = folder / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_weights(model, tmp / WEIGHTS)
        crash_point("checkpoint:weights-written")
        torch.save(optimizer if isinstance(optimizer, dict) else optimizer.state_dict(), tmp / "optimizer.pt")
        atomic_write_json(tmp / "state.json", {**(state or {}), "step": step})
        crash_point("checkpoint:before-rename")
    except BaseException:
        # A failed write (out of memory, a full disk) leaves the earlier checkpoints alone and no
        # half-written folder behind to fill the disk.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)  # the checkpoint exists only once it is complete
    for old in checkpoints(folder)[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def load_weights(model, path: Path) -> None:
    """Load a checkpoint's weights into ``model`` (same structure), strictly."""
    from safetensors.torch import load_model

    load_model(model, str(path / WEIGHTS), strict=True, device=str(next(model.parameters()).device))


def load_latest_checkpoint(folder: Path, restore: Callable[[Path, dict], object], console):
    """(state, model, optimizer state) from the newest checkpoint that loads; None when there is none.

    ``restore(path, state)`` builds the model the checkpoint was saved from and loads its weights."""
    import torch

    for path in checkpoints(folder):
        try:
            state = json.loads((path / "state.json").read_text())
            model = restore(path, state)
            optimizer_state = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
            return state, model, optimizer_state
        except Exception as err:  # a damaged checkpoint: fall back to the one before it
            if is_out_of_memory(err):
                raise  # not damage: an older checkpoint would not fit either, and starting over would lose it
            console.print(f"  [yellow]checkpoint {path.name} is unreadable ({type(err).__name__}); trying an older one[/]")
    return None


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metric lines up to ``step``: the steps after the checkpoint are redone."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line torn by a kill or a full disk
    atomic_write_text(path, "".join(line + "\n" for line in kept))
