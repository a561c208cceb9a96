"""Batch sizes that follow how long the last transaction took (crm.batching)."""

from crm.batching import LARGEST, SMALLEST, TRANSACTION_SECONDS, BatchSize


def took(size: BatchSize, seconds: float) -> int:
    size.took(seconds)
    return size.current


def test_a_quick_transaction_grows_the_batch_at_most_twofold():
    assert took(BatchSize(5000), 0.01) == 10_000


def test_a_slow_transaction_shrinks_the_batch_to_the_target_time():
    assert took(BatchSize(8000), 2 * TRANSACTION_SECONDS) == 4000


def test_the_size_stays_within_its_bounds():
    assert took(BatchSize(LARGEST), 0.001) == LARGEST
    assert took(BatchSize(SMALLEST), 60) == SMALLEST


def test_a_size_asked_for_by_hand_stays():
    assert took(BatchSize(3, fixed=True), 5) == 3
