"""Batching: every sample once per epoch, reshuffled each epoch, last partial batch kept, gathers exact."""
import numpy as np
import pytest

from nncore.data import Batches, split_validation


def test_shuffled_batches_cover_every_sample_once_per_epoch():
    n = 23
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64) * 10
    w = np.linspace(0, 1, n)
    b = Batches([x, y, None, w], 5, shuffle=True, rng=np.random.default_rng(0))
    assert len(b) == 5
    orders = []
    for _ in range(2):
        seen, sizes = [], []
        for xb, yb, none, wb in b:
            assert none is None
            rows = (xb[:, 0] // 3).astype(int)
            np.testing.assert_array_equal(xb, x[rows])          # rows gathered exactly
            np.testing.assert_array_equal(yb, y[rows])
            np.testing.assert_array_equal(wb, w[rows])
            seen += list(rows)
            sizes.append(len(xb))
        assert sizes == [5, 5, 5, 5, 3]                          # last partial batch kept
        assert sorted(seen) == list(range(n))
        orders.append(seen)
    assert orders[0] != orders[1]                                # reshuffled every epoch
    again = Batches([x, y, None, w], 5, shuffle=True, rng=np.random.default_rng(0))
    assert [list((xb[:, 0] // 3).astype(int)) for xb, *_ in again] == \
        [orders[0][i:i + 5] for i in range(0, n, 5)]             # the same generator, the same order


def test_unshuffled_batches_are_views_in_order():
    x = np.arange(14.0).reshape(7, 2)
    parts = [xb for (xb,) in Batches([x], 3)]
    assert [len(p) for p in parts] == [3, 3, 1]
    assert all(np.shares_memory(p, x) for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), x)
    with pytest.raises(ValueError, match="batch_size"):
        Batches([x], 0)
    with pytest.raises(ValueError, match="rng"):
        Batches([x], 2, shuffle=True)


def test_split_validation_is_keras_floor_rule():
    x = np.arange(10)
    (tr,), (va,) = split_validation([x], 0.25)                   # floor(10 * 0.75) = 7 for training
    np.testing.assert_array_equal(tr, x[:7])
    np.testing.assert_array_equal(va, x[7:])
    with pytest.raises(ValueError, match="validation_split"):
        split_validation([x], 1.0)
    with pytest.raises(ValueError, match="not enough"):
        split_validation([x[:1]], 0.5)
