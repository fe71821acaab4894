"""nncore.distributed.predict_dask on a real distributed.LocalCluster with worker processes."""
import pickle

import numpy as np
import pytest

import nncore
from nncore import distributed as dist
from nncore.layers import Conv2D, Dense, Flatten, Input

da = pytest.importorskip("dask.array", reason="dask is not installed (pip install -e '.[dask]')")
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _mlp():
    nncore.set_seed(3)
    m = nncore.Sequential([Input((7,)), Dense(5, "tanh"), Dense(3, "softmax")])
    m.compile("adam", "categorical_crossentropy")
    return m


def test_predict_dask_on_worker_processes_matches_predict(client):
    model = _mlp()
    x = np.random.default_rng(0).normal(size=(101, 7)).astype(np.float32)
    dx = da.from_array(x, chunks=(17, 4))                      # column chunks are merged
    out = dist.predict_dask(model, dx, batch_size=8)
    assert isinstance(out, da.Array) and out.shape == (101, 3) and out.chunks[0] == dx.chunks[0]
    got = out.compute()
    # chunks make other batches than one predict over x: the GEMM may take other paths (round-off)
    np.testing.assert_allclose(got, model.predict(x, batch_size=8, verbose=0), rtol=1e-6, atol=1e-7)
    pids = client.run(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == 2                        # two worker processes did it
    # the model is in the graph as nncore's file format (bytes), once: no pickled model object
    graph = pickle.dumps(dict(out.__dask_graph__()))
    assert b"nncore.models" not in graph and graph.count(b"NNCORE\x00\x01") == 1


def test_predict_dask_images_and_errors(client):
    nncore.set_seed(4)
    model = nncore.Sequential([Input((6, 6, 1)), Conv2D(2, 3, activation="relu"), Flatten(), Dense(4)])
    x = np.random.default_rng(1).normal(size=(23, 6, 6, 1)).astype(np.float32)
    out = dist.predict_dask(model, da.from_array(x, chunks=(5, 3, 6, 1)))
    np.testing.assert_allclose(out.compute(), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match="expected a dask.array.Array, got ndarray"):
        dist.predict_dask(model, x)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(n_samples, 6, 6, 1\), got a dask array "
                                         r"of shape \(23, 36\)"):
        dist.predict_dask(model, da.from_array(x.reshape(23, 36)))


def test_model_bytes_round_trip_is_checked():
    model = _mlp()
    blob = nncore.saving.model_to_bytes(model)
    again = nncore.saving.model_from_bytes(blob)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(ValueError, match="checksum mismatch"):
        nncore.saving.model_from_bytes(bytes(bad))
    with pytest.raises(ValueError, match="shorter than the smallest valid file"):
        nncore.saving.model_from_bytes(b"NNCORE")
