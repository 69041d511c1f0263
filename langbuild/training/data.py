"""Training data: packed EOS-separated blocks, a step-determined order, and source-language replay.

The train split is tokenised once, a chunk of documents at a time, into a flat int32 file that is
memory-mapped while training: memory does not grow with the corpus. Blocks are fixed-length views of
that stream (documents joined by EOS, no padding, the tail dropped). Which blocks step N uses is a
pure function of N and the seed, so a resumed run, or a run in several processes that each take a
slice of the same global batch, sees exactly the data an uninterrupted single process would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..core.atomic import atomic_write_json
from ..core.errors import LangbuildError

CHUNK_DOCUMENTS = 2000  # documents tokenised per call: large enough for the fast tokenizer's batching


def eos_id(tokenizer) -> int:
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def _eos_joined(encoded: Iterable[list[int]], eos: int):
    """Token ids of several documents as one stream, each document followed by EOS."""
    for ids in encoded:
        yield from ids
        yield eos


def pack_blocks(tokenizer, texts: list[str], seq_len: int):
    """All documents as one EOS-separated stream, cut into ``seq_len`` blocks (the tail is dropped)."""
    import torch

    stream = list(_eos_joined(tokenizer(texts, add_special_tokens=False)["input_ids"], eos_id(tokenizer)))
    usable = len(stream) // seq_len * seq_len
    if usable == 0:
        raise LangbuildError(
            f"the train split has {len(stream)} tokens, fewer than one block of train.seq_len={seq_len}: "
            "add text or lower train.seq_len"
        )
    return torch.tensor(stream[:usable], dtype=torch.long).view(-1, seq_len)


def _chunks(texts: Iterable[str], size: int):
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tokenise_to_file(tokenizer, texts: Iterable[str], path: Path) -> int:
    """Write the EOS-joined token stream of ``texts`` to ``path`` (int32); returns the token count.

    A finished file is recorded in ``path.json``; a file without it (a kill mid-write) is redone."""
    import numpy as np

    meta = path.with_suffix(path.suffix + ".json")
    if meta.is_file() and path.is_file():
        recorded = json.loads(meta.read_text())
        if recorded.get("bytes") == path.stat().st_size:
            return int(recorded["tokens"])
    eos = eos_id(tokenizer)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "wb") as handle:
        for chunk in _chunks(texts, CHUNK_DOCUMENTS):
            ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
            flat = np.fromiter(_eos_joined(ids, eos), dtype=np.int32)
            handle.write(flat.tobytes())
            count += len(flat)
        handle.flush()
        os.fsync(handle.fileno())
    atomic_write_json(meta, {"tokens": count, "bytes": path.stat().st_size})
    return count


class TokenBlocks:
    """Fixed-length blocks over a memory-mapped token file: ``blocks[[3, 7]]`` is a (2, seq_len) tensor."""

    def __init__(self, path: Path, tokens: int, seq_len: int, what: str):
        import numpy as np

        self.seq_len = seq_len
        self.count = tokens // seq_len
        if self.count == 0:
            raise LangbuildError(f"{what} has {tokens} tokens, fewer than one block of train.seq_len={seq_len}: "
                                 "add text or lower train.seq_len")
        self._stream = np.memmap(path, dtype=np.int32, mode="r", shape=(self.count * seq_len,))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, indices: list[int]):
        import numpy as np
        import torch

        rows = np.stack([self._stream[i * self.seq_len:(i + 1) * self.seq_len] for i in indices])
        return torch.from_numpy(rows.astype(np.int64))


def batch_indices(step: int, batch_size: int, n_blocks: int, seed: int):
    """Block indices for optimizer step ``step``: a deterministic function of the step alone.

    Every epoch is a permutation of all blocks drawn from the seed and the epoch number."""
    import torch

    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, n_blocks)
        order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        indices.append(int(order[offset]))
    return indices


def replay_rows(step: int, batch_size: int, fraction: float, seed: int) -> list[bool]:
    """Which rows of step ``step``'s global batch are source-language replay (each with probability
    ``fraction``, drawn from the seed and the step, so resumes and process counts agree)."""
    import torch

    if fraction <= 0:
        return [False] * batch_size
    draws = torch.rand(batch_size, generator=torch.Generator().manual_seed(seed * 7_919 + step + 1))
    return [bool(d < fraction) for d in draws]


def global_batch(step: int, batch_size: int, target: TokenBlocks, replay: TokenBlocks | None, fraction: float,
                 seed: int):
    """The (batch_size, seq_len) tensor of step ``step``, replay rows mixed in where drawn."""
    import torch

    is_replay = replay_rows(step, batch_size, fraction, seed) if replay is not None else [False] * batch_size
    target_rows = target[batch_indices(step, batch_size, len(target), seed)]
    if not any(is_replay):
        return target_rows
    replay_ids = batch_indices(step, batch_size, len(replay), seed + 1)
    replay_part = replay[replay_ids]
    mask = torch.tensor(is_replay).unsqueeze(1)
    return torch.where(mask, replay_part, target_rows)
