"""The data path: every epoch a permutation of the blocks, rows that depend only on the step (not on
resumes nor on the process count), and a prefetch thread that always stops."""

from __future__ import annotations

import threading
import time
from functools import partial

import numpy as np
import pytest
import torch

from langbuild.training.data import RowPrefetcher, TokenBlocks, batch_indices, block_index, global_batch, process_rows, replay_rows

SEQ_LEN = 4
REPLAY_BASE = 1_000_000  # replay tokens start here, so a row tells which file and block it came from


def _blocks(path, n_blocks: int, base: int = 0) -> TokenBlocks:
    """A token file whose block i holds the value base + i in every position."""
    np.repeat(np.arange(base, base + n_blocks, dtype=np.int32), SEQ_LEN).tofile(path)
    return TokenBlocks(path, n_blocks * SEQ_LEN, SEQ_LEN, "test")


@pytest.fixture
def files(tmp_path):
    return _blocks(tmp_path / "t.bin", 37), _blocks(tmp_path / "r.bin", 11, REPLAY_BASE)


@pytest.mark.parametrize("n_blocks", [1, 2, 3, 10, 17, 64, 65, 1000, 4097])
def test_each_epoch_is_a_permutation_of_all_blocks(n_blocks):
    for seed in (0, 1, -5):
        for epoch in (0, 1, 9):
            order = [block_index(epoch * n_blocks + i, n_blocks, seed) for i in range(n_blocks)]
            assert sorted(order) == list(range(n_blocks))


def test_the_order_depends_on_seed_and_epoch_and_nothing_else():
    n = 1000
    first, second = ([block_index(e * n + i, n, 0) for i in range(n)] for e in (0, 1))
    assert first != second and first != list(range(n))
    assert [block_index(i, n, 1) for i in range(n)] != first
    # A pure function: asking for a late epoch first changes nothing.
    late = block_index(5 * n + 3, n, 0)
    assert block_index(3, n, 0) == first[3] and block_index(5 * n + 3, n, 0) == late
    # Batches of any size walk the same stream.
    assert [i for s in range(4) for i in batch_indices(s, 5, n, 0)] == first[:20]


def test_a_large_corpus_costs_no_more_per_row():
    start = time.perf_counter()
    batch_indices(10**6, 64, 50_000_000, seed=0)  # 100B tokens of 2048-token blocks, the millionth step
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("fraction", [0.0, 0.3])
def test_process_slices_concatenate_to_the_global_batch_for_any_process_count(files, fraction):
    target, replay = files
    for step in (0, 3, 20):  # 20 * 8 rows run into the fifth epoch of the target blocks
        full = global_batch(step, 8, target, replay, fraction, 0)
        for processes in (1, 2, 4):
            parts = [process_rows(step, 8, target, replay, fraction, 0, p, processes) for p in range(processes)]
            assert torch.equal(torch.cat(parts), full)
        drawn = replay_rows(step, 8, fraction, 0)
        for row, is_replay in zip(full, drawn):
            assert len(set(row.tolist())) == 1 and (row[0] >= REPLAY_BASE) == is_replay
    with pytest.raises(ValueError, match="does not split"):
        process_rows(0, 8, target, replay, fraction, 0, 0, 3)


def test_the_target_rows_follow_the_block_order(files):
    target, _ = files
    rows = global_batch(2, 8, target, None, 0.5, 7)
    assert rows[:, 0].tolist() == batch_indices(2, 8, len(target), 7)


def test_a_prefetcher_started_at_step_k_yields_the_rows_of_an_uninterrupted_run(files):
    target, replay = files
    produce = partial(process_rows, batch_size=8, target=target, replay=replay, fraction=0.3, seed=0,
                      process_index=1, num_processes=2)
    expected = [produce(step) for step in range(12)]
    with RowPrefetcher(produce, 0, 12) as rows:
        assert all(torch.equal(rows.get(step), expected[step]) for step in range(12))
        assert torch.equal(rows.get(12), produce(12))  # past the planned end: computed on demand
    with RowPrefetcher(produce, 5, 12) as rows:  # a resume at step 5
        assert all(torch.equal(rows.get(step), expected[step]) for step in range(5, 12))
    with RowPrefetcher(produce, 0, 12) as rows:  # out of sequence: restarts at the step asked for
        assert torch.equal(rows.get(0), expected[0])
        assert torch.equal(rows.get(7), expected[7]) and torch.equal(rows.get(8), expected[8])
        assert torch.equal(rows.get(2), expected[2])


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "langbuild-rows"]


def test_the_prefetcher_stops_when_closed_with_a_full_queue_or_after_an_error():
    before = len(_prefetch_threads())
    rows = RowPrefetcher(lambda step: step, 0, 10**9, depth=2)
    assert rows.get(0) == 0
    time.sleep(0.05)  # the thread now waits on a full queue
    rows.close()
    assert len(_prefetch_threads()) == before
    with pytest.raises(RuntimeError, match="consumer"):
        with RowPrefetcher(lambda step: step, 0, 10**9) as rows:
            rows.get(0)
            raise RuntimeError("consumer failed")
    assert len(_prefetch_threads()) == before

    def failing(step):
        if step == 2:
            raise OSError("disk gone")
        return step

    with RowPrefetcher(failing, 0, 10) as rows:
        assert [rows.get(0), rows.get(1)] == [0, 1]
        with pytest.raises(OSError, match="disk gone"):
            rows.get(2)
    assert len(_prefetch_threads()) == before


def test_the_prefetcher_reads_ahead_while_the_consumer_works():
    def slow(step):
        time.sleep(0.05)
        return step

    with RowPrefetcher(slow, 0, 4) as rows:
        rows.get(0)
        time.sleep(0.4)  # "training": the next steps are produced meanwhile
        start = time.perf_counter()
        assert rows.get(1) == 1 and rows.get(2) == 2
        assert time.perf_counter() - start < 0.04
