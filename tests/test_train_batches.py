"""How an epoch's items are dealt to processes: each once, and N × B the same batches as 1 × N·B."""

from __future__ import annotations

import pytest

from trainers.plan import epoch_batches, schedule


@pytest.mark.parametrize("n", [1, 7, 12, 13, 64, 101])
@pytest.mark.parametrize("batch_size", [1, 3, 4])
@pytest.mark.parametrize("processes", [1, 2, 3, 4])
def test_every_item_is_seen_once_per_epoch_whatever_the_process_count(n, batch_size, processes):
    dealt = [epoch_batches(n, batch_size=batch_size, seed=5, epoch=2, rank=r, processes=processes)
             for r in range(processes)]
    seen = [i for rank in dealt for batch in rank for i in batch]
    assert len(seen) == len(set(seen))                      # nothing twice
    assert n - len(seen) < processes                         # at most a tail too small to share is left out
    assert len({len(rank) for rank in dealt}) == 1           # every process runs the same number of steps
    assert all(batch for rank in dealt for batch in rank)    # and never an empty micro-batch
    assert len(dealt[0]) == schedule(n, batch_size=batch_size, accumulation=1, epochs=1, max_steps=None,
                                     processes=processes).steps_per_epoch


@pytest.mark.parametrize("n", [10, 13, 64])
def test_two_processes_at_b_get_the_global_batches_of_one_process_at_2b(n):
    one = epoch_batches(n, batch_size=8, seed=1, epoch=0)
    two = [epoch_batches(n, batch_size=4, seed=1, epoch=0, rank=r, processes=2) for r in range(2)]
    merged = [a + b for a, b in zip(*two)]
    assert merged == one[:len(merged)] and len(one) - len(merged) <= 1
    assert sum(map(len, one)) - sum(map(len, merged)) < 2


def test_the_order_changes_every_epoch_and_one_process_keeps_its_old_order():
    first, second = (epoch_batches(20, batch_size=4, seed=0, epoch=e) for e in (0, 1))
    assert first != second and sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(20))
    assert [len(b) for b in epoch_batches(10, batch_size=4, seed=0, epoch=0)] == [4, 4, 2]  # last batch kept
