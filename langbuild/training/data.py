"""Training data: packed EOS-separated blocks, a step-determined order, and source-language replay.

The train split is tokenised once, a chunk of documents at a time, into a flat int32 file that is
memory-mapped while training: memory does not grow with the corpus. Blocks are fixed-length views of
that stream (documents joined by EOS, no padding, the tail dropped). Which blocks step N uses is a
pure function of N and the seed, so a resumed run, or a run in several processes that each take a
slice of the same global batch, sees exactly the data an uninterrupted single process would.

Nothing on the data path grows with the corpus: a row's block comes from a keyed bijection
(``block_index``, O(1) per row), each process reads only its own rows (``process_rows``), and a
background thread prepares the next steps while the current one trains (``RowPrefetcher``).
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
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


def _map_for_random_reads(path: Path, length: int):
    """The first ``length`` int32 tokens of ``path``, memory-mapped read-only with the kernel told that
    reads are random (``MADV_RANDOM``): blocks are read in shuffled order, and the default read-ahead
    around each page fault (the device's setting: 128 KB to 8 MB) reads far more than the 8 KB a
    2048-token block needs; at 1B tokens it made a cold 64-row step ~10 times slower."""
    import mmap

    import numpy as np

    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)  # the mapping outlives the handle
    if hasattr(mmap, "MADV_RANDOM"):  # not on Windows
        mapped.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mapped, dtype=np.int32, count=length)


class TokenBlocks:
    """Fixed-length blocks over a memory-mapped token file: ``blocks[[3, 7]]`` is a (2, seq_len) tensor."""

    def __init__(self, path: Path, tokens: int, seq_len: int, what: str):
        self.seq_len = seq_len
        self.count = tokens // seq_len
        if self.count == 0:
            raise LangbuildError(f"{what} has {tokens} tokens, fewer than one block of train.seq_len={seq_len}: "
                                 "add text or lower train.seq_len")
        self._stream = _map_for_random_reads(path, self.count * seq_len)

    def __len__(self) -> int:
        return self.count

    def read_into(self, indices: list[int], out) -> None:
        """Copy blocks ``indices`` into the rows of the int64 numpy array ``out`` (one copy, no torch:
        this runs on the prefetch thread, where torch's intra-op pool would compete with training)."""
        for row, i in zip(out, indices):
            row[:] = self._stream[i * self.seq_len:(i + 1) * self.seq_len]

    def __getitem__(self, indices: list[int]):
        import numpy as np
        import torch

        rows = np.empty((len(indices), self.seq_len), dtype=np.int64)
        self.read_into(indices, rows)
        return torch.from_numpy(rows)


# -- the order of blocks ---------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1
FEISTEL_ROUNDS = 6  # Luby-Rackoff needs 4 for a pseudorandom permutation; 6 mixes small domains better


def _mix64(x: int) -> int:
    """SplitMix64's output function (Steele, Lea & Flood, "Fast splittable pseudorandom number
    generators", OOPSLA 2014): every input bit flips about half the output bits."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@lru_cache(maxsize=64)
def _round_keys(n_blocks: int, seed: int, epoch: int) -> tuple[int, tuple[int, ...]]:
    """Half-width in bits and the round keys of epoch ``epoch``'s permutation (cached: the rows of a
    step almost always share an epoch)."""
    half = max(1, ((n_blocks - 1).bit_length() + 1) // 2)
    key = _mix64(_mix64(seed & _MASK64) ^ (epoch & _MASK64))
    return half, tuple(_mix64(key + r) for r in range(FEISTEL_ROUNDS))


def _permute(offset: int, n_blocks: int, seed: int, epoch: int) -> int:
    """A keyed bijection on [0, n_blocks): a balanced Feistel network on 2 * half bits (Luby & Rackoff,
    SIAM J. Comput. 1988) restricted to the range by cycle-walking (Black & Rogaway, "Ciphers with
    arbitrary finite domains", CT-RSA 2002): values that land outside are encrypted again until they
    fall inside. The domain is under 4 * n_blocks, so a row takes a few rounds of walking on average."""
    if n_blocks == 1:
        return 0
    half, keys = _round_keys(n_blocks, seed, epoch)
    mask = (1 << half) - 1
    x = offset
    while True:
        left, right = x >> half, x & mask
        for key in keys:
            left, right = right, left ^ (_mix64(right ^ key) & mask)
        x = (left << half) | right
        if x < n_blocks:
            return x


def block_index(position: int, n_blocks: int, seed: int) -> int:
    """The block at ``position`` of the endless stream of epochs: O(1) time and memory whatever the
    corpus size, and a pure function of (seed, epoch, position).

    Each epoch is a different permutation of all blocks, so every block is seen exactly once per epoch.
    A stateless keyed bijection was chosen over a shuffled index array per epoch (``randperm``): that
    costs O(n_blocks) time and memory (40 MB an epoch at 10B tokens) and would have to be drawn and kept
    for whichever epoch a resumed run lands in; this needs neither."""
    epoch, offset = divmod(position, n_blocks)
    return _permute(offset, n_blocks, seed, epoch)


def batch_indices(step: int, batch_size: int, n_blocks: int, seed: int) -> list[int]:
    """Block indices for optimizer step ``step``: a deterministic function of the step alone.

    Every epoch is a permutation of all blocks drawn from the seed and the epoch number."""
    return [block_index(p, n_blocks, seed) for p in range(step * batch_size, (step + 1) * batch_size)]


def replay_rows(step: int, batch_size: int, fraction: float, seed: int) -> list[bool]:
    """Which rows of step ``step``'s global batch are source-language replay (each with probability
    ``fraction``, drawn from the seed and the step, so resumes and process counts agree)."""
    import torch

    if fraction <= 0:
        return [False] * batch_size
    draws = torch.rand(batch_size, generator=torch.Generator().manual_seed(seed * 7_919 + step + 1))
    return [bool(d < fraction) for d in draws]


# -- the rows of a step ----------------------------------------------------------------------------
def process_rows(step: int, batch_size: int, target: TokenBlocks, replay: TokenBlocks | None, fraction: float,
                 seed: int, process_index: int = 0, num_processes: int = 1):
    """Process ``process_index``'s share of step ``step``'s global batch of ``batch_size`` rows: a
    (batch_size // num_processes, seq_len) tensor equal to that slice of ``global_batch``.

    Only this process's rows are read, each from one file: the target text, or the replay text where
    ``replay_rows`` drew replay. Row r of the global batch is stream position step * batch_size + r
    of the target order (seed) or of the replay order (seed + 1)."""
    import numpy as np
    import torch

    per_process, rest = divmod(batch_size, num_processes)
    if rest or not 0 <= process_index < num_processes:
        raise ValueError(f"a global batch of {batch_size} rows does not split into {num_processes} processes "
                         f"(process {process_index})")
    first = process_index * per_process
    drawn = replay_rows(step, batch_size, fraction, seed) if replay is not None else [False] * batch_size
    out = np.empty((per_process, target.seq_len), dtype=np.int64)
    for blocks, is_replay, order_seed in ((target, False, seed), (replay, True, seed + 1)):
        rows = [r for r in range(first, first + per_process) if drawn[r] == is_replay]
        if not rows:
            continue
        indices = [block_index(step * batch_size + r, len(blocks), order_seed) for r in rows]
        if rows == list(range(first, first + per_process)):
            blocks.read_into(indices, out)
        else:
            part = np.empty((len(rows), target.seq_len), dtype=np.int64)
            blocks.read_into(indices, part)
            out[[r - first for r in rows]] = part
    return torch.from_numpy(out)


def global_batch(step: int, batch_size: int, target: TokenBlocks, replay: TokenBlocks | None, fraction: float,
                 seed: int):
    """The (batch_size, seq_len) tensor of step ``step``, replay rows mixed in where drawn."""
    return process_rows(step, batch_size, target, replay, fraction, seed)


class RowPrefetcher:
    """Computes ``produce(step)`` for the steps after the one being trained, on a daemon thread.

    Results are keyed by step, so what the consumer gets is exactly ``produce(step)``: a run resumed at
    step k starts prefetching at k, and a request out of sequence restarts the thread there. ``depth``
    bounds the steps held ahead. Reading a memmap and copying with numpy mostly releases the GIL, so a
    thread hides the read behind the training step without another process. ``close`` (or leaving a
    ``with`` block) stops the thread; an error in ``produce`` is raised by ``get`` of that step."""

    def __init__(self, produce: Callable[[int], object], start: int, stop: int, depth: int = 2):
        self._produce, self._stop, self._depth = produce, stop, depth
        self._thread: threading.Thread | None = None
        self._launch(start)

    def _launch(self, start: int) -> None:
        self._next = start
        self._stopping = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=self._depth)
        self._thread = threading.Thread(target=self._work, args=(start, self._queue, self._stopping), daemon=True,
                                        name="langbuild-rows")
        self._thread.start()

    def _work(self, start: int, out: queue.Queue, stopping: threading.Event) -> None:
        for step in range(start, self._stop):
            try:
                item = (step, self._produce(step), None)
            except BaseException as err:  # handed to the consumer, which raises it in its own thread
                item = (step, None, err)
            while not stopping.is_set():
                try:
                    out.put(item, timeout=0.05)  # a timeout, so a stop is noticed while the queue is full
                    break
                except queue.Full:
                    continue
            if stopping.is_set() or item[2] is not None:
                return

    def get(self, step: int):
        """``produce(step)``, prepared ahead when ``step`` follows the previous request."""
        if step >= self._stop:
            return self._produce(step)
        if step != self._next or self._thread is None:
            self.close()
            self._launch(step)
        while True:
            try:
                got, value, err = self._queue.get(timeout=0.05)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():  # cannot happen; never wait forever
                    got, value, err = step, self._produce(step), None
                    break
        self._next = step + 1
        if err is not None:
            raise err
        assert got == step
        return value

    def close(self) -> None:
        """Stop the thread and wait for it (it notices within one put timeout or one ``produce``)."""
        if self._thread is None:
            return
        self._stopping.set()
        while True:  # empty the queue so no large rows stay referenced
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
