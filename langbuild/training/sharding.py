"""Fully sharded data parallel training through torch's FSDP2 (``torch.distributed.fsdp.fully_shard``).

Each transformer block, and the model around them, becomes one FSDP unit: every process keeps a
1/N slice (rows of dimension 0) of each parameter, of its gradient and of its AdamW state, gathers a
block's full weights just before the block runs and frees them after. Gradients are averaged over
processes in fp32 by a reduce-scatter, so the result equals DDP on the same global batch.

torch is used directly, not through accelerate: accelerate refuses FSDP on a CPU, and one code path
for CPUs (gloo, how it is tested) and GPUs (NCCL) keeps no untested branch. In bf16 the sharded
parameters stay fp32 and are the master weights: FSDP's mixed-precision policy gathers them as bf16
for compute and reduces gradients in fp32 (the same recipe as ``precision.MasterWeights``).

Checkpoints are consolidated: each sharded tensor is gathered one at a time and only the main
process keeps it, so a checkpoint has the same files and layout as a one-process run's, and a run
can resume under another launcher or process count. Between stages (and at the end) the model is
gathered into a plain, unsharded copy, because a later stage freezes, wraps (LoRA) and shards
differently.
"""

from __future__ import annotations

import socket

from .stages import StageSetup


def ensure_process_group(device) -> bool:
    """A process group to shard over; a single process (world size 1) gets a private one, and True
    is returned so the caller can close it (``close_private_group``) when training ends."""
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    return True


def close_private_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _mesh(device):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device.type, (dist.get_world_size(),))


def shard(setup: StageSetup, precision: str, device, blocks: list) -> StageSetup:
    """``setup``'s model sharded in place (each block, then the root), with its optimizer groups and
    row masks pointing at the sharded parameters, which replace the originals. The model may sit on
    the CPU: each unit's shard is moved to ``device`` as it is cut."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.distributed.tensor import distribute_tensor

    names = {id(p): n for n, p in setup.model.named_parameters()}
    mesh = _mesh(device)
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if precision == "bf16"
              else MixedPrecisionPolicy())
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(setup.model, mesh=mesh, mp_policy=policy)
    sharded = dict(setup.model.named_parameters())
    groups = [{**group, "params": [sharded[names[id(p)]] for p in group["params"]]} for group in setup.groups]
    masks = []
    for param, keep in setup.row_masks:
        new = sharded[names[id(param)]]
        # The gradient is sharded by rows like the parameter: the mask is cut the same way.
        masks.append((new, distribute_tensor(keep.to(new.device), new.device_mesh, new.placements)))
    return StageSetup(setup.model, groups, masks)


def _gathered(tensor, keep: bool):
    """The full tensor of a sharded one (a collective: every process calls it), on the CPU where kept."""
    from torch.distributed.tensor import DTensor

    full = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
    return full.detach().cpu() if keep else None


def full_weights(model, keep: bool) -> dict:
    """Every entry of the sharded model's state dict, gathered; tied weights appear under each name."""
    state = model.state_dict(keep_vars=True)
    gathered: dict[int, object] = {}
    out = {}
    for name, tensor in state.items():
        if id(tensor) not in gathered:  # a tied matrix is gathered once
            gathered[id(tensor)] = _gathered(tensor, keep)
        out[name] = gathered[id(tensor)]
    return out if keep else {}


def full_optimizer_state(optimizer, keep: bool) -> dict:
    """The optimizer's state dict with every sharded moment gathered: the layout of a one-process run's."""
    state = optimizer.state_dict()
    moments = {index: {key: _gathered(value, keep) for key, value in entry.items()}
               for index, entry in state["state"].items()}
    return {"state": moments, "param_groups": state["param_groups"]} if keep else {}


def load_full_optimizer_state(optimizer, state: dict) -> None:
    """Load a consolidated optimizer state into an optimizer over sharded parameters."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    sharded = {}
    for index, entry in state["state"].items():
        param = params[int(index)]
        sharded[index] = {key: distribute_tensor(value.to(param.device), param.device_mesh, param.placements)
                          if isinstance(param, DTensor) and value.dim() > 0 else value for key, value in entry.items()}
    optimizer.load_state_dict({"state": sharded, "param_groups": state["param_groups"]})


def unsharded_copy(model, build_plain):
    """A plain model with the sharded ``model``'s weights, on every process. ``build_plain()`` makes
    a model of the same structure (the base model, LoRA-wrapped when the stage was)."""
    weights = full_weights(model, keep=True)
    plain = build_plain()
    device = next(plain.parameters()).device
    plain.load_state_dict({name: tensor.to(device) for name, tensor in weights.items()}, strict=True)
    return plain
