"""The benchmark suite: its peers do the same work, its arithmetic is right, and it runs.

The suite lives in bench/ (not a package of nncore); these tests keep it from
rotting: the hand-written NumPy peer against finite differences, PyTorch
against the NumPy peer on the same weights, nncore against the NumPy peer
(once the model exists), the ratio/table logic on made-up numbers, and one
run of ``python -m bench``'s main on a tiny budget.
"""
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)  # for `bench`; after site-packages, where an installed nncore must win (and child
    #                        processes that inherit sys.path, such as joblib's workers, with it)

from bench import peers as P  # noqa: E402
from bench.run import bench_workload, format_tables, main, parse_args, summarize  # noqa: E402
from bench.workloads import Workload, get_workload, make_data  # noqa: E402


def _problem(layers=(4, 6, 5, 3), n=7, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    wl = Workload("t", layers, n, n)  # one batch holds all samples: one epoch is one step
    x = rng.standard_normal((n, layers[0])).astype(dtype)
    y = rng.integers(0, layers[-1], size=n).astype(np.int64)
    return wl, x, y


def _loss(peer, x, y):
    p = peer.forward(x)[1]
    return -np.log(p[np.arange(len(y)), y]).mean()


def test_numpy_peer_gradient_matches_finite_differences():
    wl, x, y = _problem()
    peer = P.NumpyPeer(wl, x, y)
    for b in peer.b:  # non-zero biases, so that their gradient is exercised
        b[...] = np.linspace(-0.3, 0.3, b.size)
    loss, grads = peer.gradients(x, y)
    assert loss == pytest.approx(_loss(peer, x, y), rel=1e-12)
    h = 1e-6
    for p, g in zip(peer.params, grads):
        assert g.shape == p.shape
        fd = np.empty_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = _loss(peer, x, y)
            p[i] = old - h
            down = _loss(peer, x, y)
            p[i] = old
            fd[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)


def test_numpy_peer_first_adam_step_is_lr_times_sign():
    # Keras adam_test::test_single_step: the first step moves each weight by lr * sign(g), up to eps.
    wl, x, y = _problem()
    peer = P.NumpyPeer(wl, x, y)
    before = peer.get_weights()
    _, grads = peer.gradients(x, y)
    peer.adam(grads)
    for w0, w1, g in zip(before, peer.get_weights(), grads):
        # m = 0.1 g, v = 0.001 g^2, a_1 = lr sqrt(0.001) / 0.1: the step is lr g / (|g| + eps / sqrt(0.001))
        expected = w0 - P.LR * g / (np.abs(g) + P.NumpyPeer.eps / np.sqrt(1 - P.NumpyPeer.beta_2))
        np.testing.assert_allclose(w1, expected, rtol=0, atol=1e-12)
    assert peer.t == 1


def test_torch_peer_does_the_same_work_as_numpy_peer():
    torch = pytest.importorskip("torch")
    wl, x, y = _problem(dtype=np.float32)
    ref = P.NumpyPeer(wl, x, y)
    tp = P.TorchPeer(wl, x, y)
    tp.set_weights(ref.get_weights())
    loss = tp.loss_fn(tp.model(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    ref_loss, ref_grads = ref.gradients(x, y)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    got = []
    for lin in tp.linears():
        got += [lin.weight.grad.numpy().T, lin.bias.grad.numpy()]
    for g, r in zip(got, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
    # one epoch = one full-batch Adam step for both; eps forms differ (PyTorch 1e-8 vs Keras 1e-7 hat)
    for cls in (P.TorchPeer, P.TorchFusedPeer):
        peer = cls(wl, x, y)
        ref = P.NumpyPeer(wl, x, y)
        peer.set_weights(ref.get_weights())
        peer.run(1)
        ref.run(1)
        for a, b in zip(peer.get_weights(), ref.get_weights()):
            np.testing.assert_allclose(a, b, rtol=0, atol=0.05 * P.LR)  # a step is ~lr
        np.testing.assert_allclose(peer.predict_all(), ref.predict_all(), rtol=1e-4, atol=1e-5)


def test_nncore_peer_matches_numpy_peer():
    ok, why = P.NncorePeer.available()
    if not ok:
        pytest.skip(why)
    wl, x, y = _problem(dtype=np.float32)
    ref = P.NumpyPeer(wl, x, y)
    peer = P.NncorePeer(wl, x, y)
    peer.set_weights(ref.get_weights())
    np.testing.assert_allclose(peer.predict_all(), ref.predict_all(), rtol=1e-4, atol=1e-6)
    for _ in range(3):  # three full-batch steps, same Keras-form Adam on both sides
        peer.run(1)
        ref.run(1)
    for a, b in zip(peer.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_inference_peers_match_the_nncore_peer():
    # ONNX Runtime on the exported model and nncore's model(x) per batch: nncore's predict on the same
    # weights, at batch 1 and at a batch that leaves a partial last one
    ok, why = P.NncorePeer.available()
    if not ok:
        pytest.skip(why)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 4)).astype(np.float32)
    y = rng.integers(0, 3, 11)
    weights = [rng.normal(scale=0.5, size=s).astype(np.float32) for s in ((4, 6), (6,), (6, 5), (5,), (5, 3), (3,))]
    for batch in (1, 4):
        wl = Workload("p", (4, 6, 5, 3), batch, 11, task="predict")
        ref = P.NncorePeer(wl, x, y)
        ref.set_weights(weights)
        p = ref.predict_all()
        np.testing.assert_allclose(p, ref.model.predict(x, verbose=0), rtol=1e-6)
        for cls in (P.OnnxRuntimePeer, P.NncoreCallPeer, P.NncorePredictOnBatchPeer):
            if not cls.available()[0] or not cls.supports(wl)[0]:
                continue
            peer = cls(wl, x, y)
            peer.set_weights(weights)
            for threads in (2, 1):
                peer.set_threads(threads)
                np.testing.assert_allclose(peer.predict_all(), p, rtol=1e-5, atol=1e-6, err_msg=cls.name)
                if cls is P.OnnxRuntimePeer:   # a new session for each thread count
                    assert peer.sess.get_session_options().intra_op_num_threads == threads


def test_int8_peers_predict_what_the_float_model_does():
    # nncore after quantize("int8") and PyTorch's quantize_dynamic on the same float weights: the float
    # model's probabilities up to int8 rounding; nncore int8 is its own model quantized again on set_weights
    ok, why = P.NncorePeer.available()
    if not ok:
        pytest.skip(why)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (40, 20)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    wl = Workload("p", (20, 16, 8, 3), 16, 40, task="predict")
    ref = P.NncorePeer(wl, x, y)
    weights = ref.get_weights()
    ref.set_weights(weights)
    p = ref.predict_all()
    for cls in (P.NncoreInt8Peer, P.TorchInt8Peer, P.TorchInt8StaticPeer):
        if not cls.available()[0]:
            continue
        peer = cls(wl, x, y)
        peer.set_weights(weights)
        q = peer.predict_all()
        assert np.abs(q - p).max() < 0.05 and (q.argmax(1) == p.argmax(1)).mean() >= 0.95, cls.name
    int8_peer = P.NncoreInt8Peer(wl, x, y)
    int8_peer.set_weights(weights)
    assert int8_peer.model.quantized == [layer.name for layer in int8_peer.model.layers]
    for name in P.INT8_PEERS:
        for train_row in ("medium", "cnn"):
            ok, why = P.supports(name, get_workload(train_row))
            assert not ok and "inference" in why


def test_int8_peers_predict_what_the_float_cnn_does():
    # the cnn_predict row's contenders on the same float weights: nncore int8 (every Conv2D and the Dense
    # int8), PyTorch quantize_dynamic (its Linear int8, the convolutions float32) and PyTorch static int8
    # (every layer int8, activation scales calibrated): the float model's probabilities up to int8 rounding
    torch = pytest.importorskip("torch")
    wl, x, y = _cnn_problem(n=32)
    wl = Workload("c", wl.layers, 16, 32, task="predict", arch="cnn", input_shape=wl.input_shape)
    weights = _cnn_weights(wl)
    ref = P.NncorePeer(wl, x, y)
    ref.set_weights(weights)
    p = ref.predict_all()
    for cls in (P.TorchPeer, P.NncoreInt8Peer, P.TorchInt8Peer, P.TorchInt8StaticPeer):
        peer = cls(wl, x, y)
        peer.set_weights(weights)
        q = peer.predict_all()
        assert np.abs(q - p).max() < 0.05 and (q.argmax(1) == p.argmax(1)).mean() >= 0.9, cls.name
        if cls is P.TorchInt8Peer:      # only the head is quantized
            kinds = {type(m).__name__ for m in peer.model.modules()}
            assert "Conv2d" in kinds and "Linear" in kinds, kinds
        if cls is P.TorchInt8StaticPeer:
            kinds = {type(m).__module__ for m in peer.model.modules() if "Conv" in type(m).__name__}
            assert kinds and all("quantized" in k for k in kinds), kinds
    assert peer.get_weights()[0].shape == weights[0].shape


def test_cnn_predict_int8_row_runs_on_a_tiny_budget(tmp_path, capsys):
    # `python -m bench --workloads cnn_predict --precision int8`: float32 nncore and PyTorch, and the int8
    # contenders, one table row per thread count
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    rc = main(["--workloads", "cnn_predict", "--precision", "int8", "--peers",
               "nncore,torch,nncore_int8,torch_int8,torch_int8_static", "--threads", "1,2", "--repeats", "2",
               "--min-time", "0", "--pause", "0", "--max-samples", "64", "--no-memory", "--json", str(out),
               "--no-fma-peak", "--quiet"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert [(r["workload"], r["threads"], r["task"]) for r in res["results"]] == [("cnn_predict", 1, "predict"),
                                                                              ("cnn_predict", 2, "predict")]
    for row in res["results"]:
        assert row["errors"] == {} and row["samples"] == 64
        assert set(row["best_variant"]) == {"nncore", "torch", "nncore_int8", "torch_int8", "torch_int8_static"}
    printed = capsys.readouterr().out
    int8_part = printed.split("### int8 inference")[1]
    assert "PyTorch quantize_dynamic (Linear only)" in int8_part and "PyTorch int8 static" in int8_part
    lines = [t for t in int8_part.splitlines() if t.startswith("| cnn_predict |")]
    assert [t.split(" | ")[1] for t in lines] == ["1", "2"] and all(t.count("x |") == 4 for t in lines)


def test_int8_precision_option_and_table():
    assert not set(P.INT8_PEERS) & set(parse_args([]).peers)
    assert set(P.INT8_PEERS) <= set(parse_args(["--precision", "int8"]).peers)
    raw = _row({"nncore": 10.0, "torch": 30.0, "nncore_int8": 5.0, "torch_int8": 6.0})
    raw["task"] = "predict"
    row = summarize(raw)
    assert row["ratios"]["fastest"]["peer"] == "torch"      # never an int8 contender: another precision
    table = format_tables({"results": [row], "peers": {}, "memory": []})
    head, int8_part = table.split("### int8 inference")
    assert "nncore int8" not in head
    line = next(t for t in int8_part.splitlines() if t.startswith("| tiny | 2 |"))
    assert line.endswith("| 2.00x | 6.00x | 1.20x |")        # nncore float32, PyTorch, PyTorch int8 over it


def test_inference_peers_do_not_train():
    wl = get_workload("tiny")
    for name in ("onnxruntime", "nncore_call", "nncore_pob"):
        ok, why = P.supports(name, wl)
        assert not ok and "inference only" in why


def test_sklearn_peer_learns_iris():
    pytest.importorskip("sklearn")
    wl = get_workload("tiny")
    x, y = make_data(wl)
    assert x.dtype == np.float32 and x.shape == (150, 4) and set(np.unique(y)) == {0, 1, 2}
    peer = P.SklearnPeer(wl, x, y)
    peer.set_threads(1)
    peer.run(1)
    first = peer.last_loss
    peer.run(20)
    assert peer.last_loss < first
    assert peer.clf.coefs_[0].dtype == np.float32  # float32 input stays float32
    assert [c.shape for c in peer.clf.coefs_] == [(4, 16), (16, 3)]


def _row(medians):
    """A raw row as bench_workload makes it, with constant timings per slot."""
    row = {"workload": "tiny", "task": "train", "layers": [4, 16, 3], "batch": 16, "samples": 160,
           "steps": 10, "threads": 2, "entries": {}, "errors": {}}
    for key, med in medians.items():
        peer, _, env = key.partition("[")
        run_s = [med * 10 * 1e-6 * f for f in (0.9, 1.0, 1.3)]  # us/step median = med
        row["entries"][key] = {"peer": peer, "blas_env": "unset" if env else None, "k": 1, "warmup_s": 0.1,
                               "run_s": run_s, "last_loss": 1.0, "us_per_step": [t / 10 * 1e6 for t in run_s]}
    return row


def test_summarize_ratios_and_best_variant():
    row = summarize(_row({"nncore": 10.0, "torch": 200.0, "numpy": 60.0, "numpy[unset]": 40.0,
                          "sklearn": 150.0, "sklearn[unset]": 300.0}))
    assert row["best_variant"] == {"nncore": "nncore", "torch": "torch", "numpy": "numpy[unset]",
                                   "sklearn": "sklearn"}
    assert row["ratios"]["torch"] == pytest.approx(20.0)
    assert row["ratios"]["numpy"] == pytest.approx(4.0)  # against the faster OpenBLAS variant
    assert row["ratios"]["sklearn"] == pytest.approx(15.0)
    assert row["ratios"]["fastest"] == {"peer": "numpy", "ratio": pytest.approx(4.0)}
    e = row["entries"]["numpy[unset]"]
    assert e["us_per_step_stats"] == {"median": pytest.approx(40.0), "min": pytest.approx(36.0),
                                      "max": pytest.approx(52.0)}
    assert e["samples_per_s_median"] == pytest.approx(160 / (40.0 * 10 * 1e-6))
    table = format_tables({"results": [row], "peers": {}, "memory": []})
    line = next(t for t in table.splitlines() if t.startswith("| tiny | 16 | 10 | ? |"))
    assert "40.0 (36.0-52.0) ᵘ" in line and "20.00x" in line and "4.00x (NumPy)" in line
    assert "| tiny | 2 | NumPy | 60.0 | 40.0 | 1.50 |" in table


def test_nncore_variants_have_ratios_but_are_never_the_fastest_peer():
    raw = _row({"nncore": 10.0, "nncore_call": 5.0, "onnxruntime": 8.0, "torch": 30.0})
    raw["task"] = "predict"
    row = summarize(raw)
    assert row["ratios"]["nncore_call"] == pytest.approx(0.5)
    assert row["ratios"]["fastest"] == {"peer": "onnxruntime", "ratio": pytest.approx(0.8)}
    train = summarize(_row({"nncore": 10.0, "torch": 30.0}))
    train["unsupported"] = {"onnxruntime": "ONNX Runtime runs inference only"}
    table = format_tables({"results": [train, row], "peers": {}, "memory": []})
    train_table, predict_table = table.split("### Inference")[:2]
    assert "ONNX Runtime" not in train_table.split("- ")[0] and "| nncore / ONNX Runtime |" in predict_table
    assert "0.80x (ONNX Runtime)" in predict_table and "- ONNX Runtime on tiny: n/a (ONNX Runtime runs" in table


def test_summarize_without_nncore_has_no_ratios():
    row = summarize(_row({"torch": 200.0, "numpy": 60.0}))
    assert row["ratios"] == {}
    table = format_tables({"results": [row], "peers": {"nncore": {"available": False, "reason": "absent"}},
                           "memory": []})
    assert "nncore / " not in table and "nncore did not run: absent" in table


class _FakeSlot:
    """Returns a fixed time per run; fails at run number `fail_at` when given."""

    def __init__(self, key, seconds, fail_at=None):
        self.key, self.peer_name, self.blas_env = key, key, None
        self.seconds, self.fail_at, self.calls, self.ks = seconds, fail_at, [], []

    def setup(self, wl, threads):
        pass

    def run(self, k):
        self.calls.append(k)
        if self.fail_at is not None and len(self.calls) >= self.fail_at:
            raise RuntimeError("boom")
        return self.seconds * k, 0.5

    def close(self):
        self.closed = True


def test_bench_workload_interleaves_calibrates_and_survives_a_failing_peer():
    args = parse_args(["--repeats", "5", "--min-time", "0.01", "--pause", "0"])
    wl = Workload("w", (4, 8, 3), 10, 100)  # 10 steps per epoch
    fast, slow, bad = _FakeSlot("fast", 0.001), _FakeSlot("slow", 0.02), _FakeSlot("bad", 0.001, fail_at=4)
    log = []
    for s in (fast, slow, bad):
        run = s.run
        s.run = (lambda run, key: lambda k: (log.append(key), run(k))[1])(run, s.key)
    row = summarize(bench_workload(wl, 2, [fast, slow, bad], args))
    assert fast.calls == [1, 1] + [10] * 5 and slow.calls == [1, 1] + [1] * 5  # k = ceil(0.01 / t)
    timed = log[6:]  # after the warm-up and calibration rounds
    assert timed[:3] == ["fast", "slow", "bad"] and timed[3:5] == ["slow", "bad"]  # rotation A B C, B C A
    assert set(row["entries"]) == {"fast", "slow"} and "repeat 1" in row["errors"]["bad"] and bad.closed
    assert row["entries"]["fast"]["us_per_step_stats"]["median"] == pytest.approx(100.0)
    assert row["entries"]["slow"]["us_per_step_stats"]["median"] == pytest.approx(2000.0)


@pytest.mark.parametrize("argv", [["--workloads", "huge"], ["--peers", "jax"], ["--threads", "0"],
                                  ["--repeats", "0"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_quick_defaults():
    args = parse_args(["--quick"])
    assert args.workloads == ["tiny", "small", "predict"] and args.threads == [2] and args.repeats == 5
    assert args.no_memory


def test_suite_runs_on_a_tiny_budget(tmp_path, capsys):
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    peers = "nncore,torch,sklearn,numpy"
    rc = main(["--workloads", "tiny,predict", "--peers", peers, "--threads", "1", "--repeats", "2",
               "--min-time", "0", "--pause", "0", "--max-samples", "300", "--blas-env", "both",
               "--memory", "predict", "--memory-peers", "nncore,numpy", "--json", str(out), "--markdown", str(md),
               "--no-fma-peak", "--quiet"])
    assert rc == 0
    res = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "### Training, 1 thread" in printed and "### Inference (predict), 1 thread" in printed
    assert md.read_text().strip() == printed.strip()
    expect = {p for p in peers.split(",") if P.get_peer_class(p).available()[0]}
    assert [r["workload"] for r in res["results"]] == ["tiny", "predict"]
    for row in res["results"]:
        assert row["errors"] == {}
        assert set(row["best_variant"]) == expect
        assert {"numpy[unset]", "sklearn[unset]"} <= set(row["entries"])
        for e in row["entries"].values():
            assert len(e["us_per_step"]) == 2 and all(t > 0 for t in e["us_per_step"])
    assert res["results"][0]["samples"] == 150 and res["results"][1]["samples"] == 300
    assert res["machine"]["logical_cpus"] >= 1 and "threadpool_info" in res["machine"]
    assert "OPENBLAS_CORETYPE" not in res["machine"]["unset_worker"]["env"]
    md2 = tmp_path / "again.md"
    assert main(["--render", str(out), "--markdown", str(md2)]) == 0  # re-render the tables from the JSON
    assert md2.read_text() == md.read_text()
    mem = {m["peer"]: m for m in res["memory"]}
    assert mem["numpy"]["peak_rss_mb"] >= mem["numpy"]["rss_before_fit_mb"] > 0
    if "nncore" in expect:
        assert mem["nncore"]["peak_rss_mb"] > 0


# ---------------------------------------------------------------------------------------- architectures
def _cnn_problem(n=6, seed=0):
    """A small "cnn" workload: (14, 16, 2) images (one odd map: floor pooling), blocks of 3 and 4 filters, 5 classes; one batch."""
    rng = np.random.default_rng(seed)
    wl = Workload("c", (448, 3, 4, 5), n, n, arch="cnn", input_shape=(14, 16, 2))
    x = rng.standard_normal((n,) + wl.input_shape).astype(np.float32)
    y = rng.integers(0, 5, size=n).astype(np.int64)
    return wl, x, y


def _cnn_weights(wl, seed=1):
    """Keras-order weights with non-zero biases for the "cnn" architecture of wl."""
    rng = np.random.default_rng(seed)
    convs, (h, w, c) = P.cnn_shapes(wl)
    out = []
    for cin, f in convs:
        out += [rng.uniform(-0.4, 0.4, (3, 3, cin, f)).astype(np.float32),
                rng.uniform(-0.1, 0.1, f).astype(np.float32)]
    out += [rng.uniform(-0.3, 0.3, (h * w * c, wl.n_classes)).astype(np.float32),
            rng.uniform(-0.1, 0.1, wl.n_classes).astype(np.float32)]
    return out


def test_cnn_workload_and_builders():
    wl = get_workload("cnn", 300)
    x, y = make_data(wl)
    assert wl.arch == "cnn" and x.shape == (300, 28, 28, 1) and x.dtype == np.float32
    assert P.cnn_shapes(wl) == ([(1, 32), (32, 64)], (5, 5, 64))
    for name in ("numpy", "sklearn"):  # no such network: the row shows n/a, building it is refused
        ok, why = P.supports(name, wl)
        assert not ok and "cnn" in why
        with pytest.raises(ValueError, match="cnn"):
            P.get_peer_class(name)(wl, x, y)
    for name in ("torch", "torch_fused", "keras"):
        assert P.supports(name, wl) == (True, "")
    with pytest.raises(ValueError, match="input_shape"):
        Workload("bad", (10, 4, 3), 2, 2, arch="cnn", input_shape=(3, 3, 1))


def _step_peers(wl, x, y, weights, p, grads, rtol):
    """Every available peer of wl with the same weights: its predictions against the float64 reference p
    (to rtol), then one full-batch Adam step; nncore's gradients of that step against grads (PyTorch's,
    Keras order). Returns {peer name: the stepped peer}."""
    stepped = {}
    for cls in (P.TorchFusedPeer, P.KerasPeer, P.NncorePeer, P.TorchPeer):
        ok, _ = cls.available()
        if not ok or not cls.supports(wl)[0]:
            continue
        peer = cls(wl, x, y)
        peer.set_weights(weights)
        np.testing.assert_allclose(peer.predict_all(), p, rtol=rtol, atol=1e-6, err_msg=cls.name)
        peer.run(1)
        stepped[cls.name] = peer
    if "nncore" in stepped:
        model = stepped["nncore"].model
        got = [layer._grad_of[attr] for layer in model.layers for attr, *_ in layer._specs]
        assert len(got) == len(grads)
        for g, r in zip(got, grads):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
    return stepped


def test_cnn_peers_compute_the_same_forward_gradient_and_first_step():
    torch = pytest.importorskip("torch")
    wl, x, y = _cnn_problem()
    weights = _cnn_weights(wl)
    tp = P.TorchPeer(wl, x, y)
    tp.set_weights(weights)
    for a, b in zip(tp.get_weights(), weights):  # the layout conversions round-trip
        np.testing.assert_array_equal(a, b)
    logits = tp.model(tp.tx)
    loss = tp.loss_fn(logits, tp.ty)
    loss.backward()
    prob = torch.softmax(logits, 1).detach().numpy()
    grads = tp.get_weights(grads=True)
    # the torch side against a float64 NumPy forward of the same channels_last network
    a = x.astype(np.float64)
    for K, b in zip(weights[0:-2:2], weights[1:-2:2]):
        win = np.lib.stride_tricks.sliding_window_view(a, (3, 3), axis=(1, 2))  # (n, H-2, W-2, C, 3, 3)
        a = np.maximum(np.einsum("nhwcij,ijcf->nhwf", win, K.astype(np.float64)) + b, 0)
        h2, w2 = a.shape[1] // 2, a.shape[2] // 2
        a = a[:, :2 * h2, :2 * w2].reshape(len(a), h2, 2, w2, 2, -1).max(axis=(2, 4))
    z = a.reshape(len(a), -1) @ weights[-2] + weights[-1]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(prob, p, rtol=1e-4, atol=1e-6)
    assert loss.item() == pytest.approx(-np.log(p[np.arange(len(y)), y]).mean(), rel=1e-5)
    stepped = _step_peers(wl, x, y, weights, p, grads, rtol=1e-4)
    ref = stepped.pop("torch").get_weights()
    for name, peer in stepped.items():  # eps forms differ (PyTorch 1e-8, Keras 1e-7 hat): a step is ~lr
        for a, b in zip(peer.get_weights(), ref):
            np.testing.assert_allclose(a, b, rtol=0, atol=0.05 * P.LR, err_msg=name)



def _lstm_problem(n=6, seed=0):
    """A small "lstm" workload: sequences of 5 steps x 3 features, LSTM(4), 3 classes; one batch."""
    rng = np.random.default_rng(seed)
    wl = Workload("l", (15, 4, 3), n, n, arch="lstm", input_shape=(5, 3))
    x = rng.standard_normal((n,) + wl.input_shape).astype(np.float32)
    y = rng.integers(0, 3, size=n).astype(np.int64)
    return wl, x, y


def test_lstm_workload_and_builders():
    wl = get_workload("lstm", 300)
    x, y = make_data(wl)
    assert wl.arch == "lstm" and x.shape == (300, 28, 28) and x.dtype == np.float32 and wl.hidden == (128,)
    for name in ("numpy", "sklearn"):
        ok, why = P.supports(name, wl)
        assert not ok and "lstm" in why
    for name in ("torch", "torch_fused", "keras", "nncore"):
        assert P.supports(name, wl) == (True, "")


def test_lstm_peers_compute_the_same_forward_gradient_and_first_step():
    torch = pytest.importorskip("torch")
    wl, x, y = _lstm_problem()
    u, k = 4, 3
    rng = np.random.default_rng(1)
    weights = [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in ((3, 4 * u), (u, 4 * u), (4 * u,), (u, k), (k,))]
    tp = P.TorchPeer(wl, x, y)
    tp.set_weights(weights)
    for a, b in zip(tp.get_weights(), weights):  # the layout conversions round-trip
        np.testing.assert_array_equal(a, b)
    logits = tp.model(tp.tx)
    loss = tp.loss_fn(logits, tp.ty)
    loss.backward()
    prob = torch.softmax(logits, 1).detach().numpy()
    grads = tp.get_weights(grads=True)
    # the torch side against a float64 NumPy LSTM in Keras's layout (gates i, f, c, o)
    W, U, b, Wd, bd = (w.astype(np.float64) for w in weights)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h, c = np.zeros((len(x), u)), np.zeros((len(x), u))
    for t in range(x.shape[1]):
        z = x[:, t].astype(np.float64) @ W + h @ U + b
        c = sig(z[:, u:2 * u]) * c + sig(z[:, :u]) * np.tanh(z[:, 2 * u:3 * u])
        h = sig(z[:, 3 * u:]) * np.tanh(c)
    zz = h @ Wd + bd
    p = np.exp(zz - zz.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(prob, p, rtol=1e-5, atol=1e-6)
    assert loss.item() == pytest.approx(-np.log(p[np.arange(len(y)), y]).mean(), rel=1e-5)
    stepped = _step_peers(wl, x, y, weights, p, grads, rtol=1e-5)
    # the first Adam step is lr g / (|g| + e): e = 1e-8 for PyTorch, eps_hat / sqrt(1 - b2) = 3.2e-6 for
    # Keras and nncore (epsilon hat 1e-7); an LSTM has gradients small enough (early steps) for the two
    # forms to differ by a good part of lr, so each peer is checked against its own form
    # (PyTorch's LSTM bias is b_ih + b_hh, two parameters that Adam steps each: it moves twice as far)
    for name, peer in stepped.items():
        torch_form = name.startswith("torch")
        e = 1e-8 if torch_form else 1e-7 / np.sqrt(1 - 0.999)
        for i, (a, w0, g) in enumerate(zip(peer.get_weights(), weights, grads)):
            lr = 2 * P.LR if torch_form and i == 2 else P.LR
            np.testing.assert_allclose(a, w0 - lr * g / (np.abs(g) + e), rtol=0, atol=0.02 * P.LR, err_msg=name)


@pytest.mark.parametrize("arch", ["gru", "rnn"])
def test_gru_and_rnn_rows_peers_compute_the_same_forward_and_gradient(arch):
    # the gru and rnn rows: PyTorch's nn.GRU / nn.RNN from Keras-layout weights (the layout round-trips),
    # then every peer's predictions and nncore's gradients against PyTorch's
    pytest.importorskip("torch")
    wl = get_workload(arch, 300)
    assert wl.arch == arch and wl.hidden == (128,) and wl.input_shape == (28, 28)
    for name in ("torch", "nncore"):
        assert P.supports(name, wl) == (True, "")
    rng = np.random.default_rng(3)
    n, u, k = 6, 4, 3
    wl = Workload("g", (15, u, k), n, n, arch=arch, input_shape=(5, 3))
    x = rng.standard_normal((n, 5, 3)).astype(np.float32)
    y = rng.integers(0, k, size=n).astype(np.int64)
    G = 3 * u if arch == "gru" else u
    shapes = ((3, G), (u, G), (2, G) if arch == "gru" else (G,), (u, k), (k,))
    weights = [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in shapes]
    tp = P.TorchPeer(wl, x, y)
    tp.set_weights(weights)
    for a, b in zip(tp.get_weights(), weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7 if arch == "rnn" else 0)   # rnn: b_ih + 0
    logits = tp.model(tp.tx)
    loss = tp.loss_fn(logits, tp.ty)
    loss.backward()
    import torch
    p = torch.softmax(logits, 1).detach().numpy()
    grads = tp.get_weights(grads=True)
    _step_peers(wl, x, y, weights, p, grads, rtol=1e-5)


def test_overhead_script_checks_agreement_and_prints_its_table(capsys):
    from bench import overhead
    for cls in (P.OnnxRuntimePeer, P.TorchPeer):
        ok, why = cls.available()
        if not ok:
            pytest.skip(why)
    assert overhead.main(["--threads", "1", "--batches", "1,3", "--repeats", "1", "--calls", "20"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 3 |")]
    assert len(rows) == 2 and all(line.count("x |") == 4 for line in rows), out
    assert overhead.main(["--int8", "--threads", "1", "--batches", "1", "--repeats", "1", "--calls", "20"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 1 and rows[0].count("x |") == 4 and "int8 model(x)" in out, out


def test_bf16_peers_train_in_bfloat16_and_their_table():
    # nncore under mixed_bfloat16 and PyTorch under autocast train the rows' model from the same weights;
    # one epoch lowers the loss as the float32 peers' does; --precision bf16 adds them, their own table
    ok, why = P.NncorePeer.available()
    if not ok:
        pytest.skip(why)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (64, 20)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    wl = Workload("t", (20, 16, 3), 16, 64)
    peer = P.NncoreBf16Peer(wl, x, y)
    assert [layer.compute_dtype for layer in peer.model.layers] == ["bfloat16"] * 2
    import nncore
    assert nncore.mixed_precision.global_policy().name == "float32"      # the policy set for the build only
    weights = P.NncorePeer(wl, x, y).get_weights()
    for cls, float_cls in ((P.NncoreBf16Peer, P.NncorePeer), (P.TorchBf16Peer, P.TorchPeer)):
        if not cls.available()[0]:
            continue
        losses = []
        for c in (cls, float_cls):
            peer = c(wl, x, y)
            peer.set_weights(weights)
            peer.train_epoch()
            losses.append(peer.last_loss)
        assert abs(losses[0] - losses[1]) < 0.05, (cls.name, losses)   # the float32 epoch to bfloat16 rounding
        assert not P.supports(cls.name, get_workload("predict"))[0]
    assert not set(P.BF16_PEERS) & set(parse_args([]).peers)
    assert set(P.BF16_PEERS) <= set(parse_args(["--precision", "bf16"]).peers)
    row = summarize(_row({"nncore": 10.0, "torch": 30.0, "nncore_bf16": 20.0, "torch_bf16": 40.0}))
    assert row["ratios"]["fastest"]["peer"] == "torch"      # never a bf16 contender: another precision
    head, bf16_part = format_tables({"results": [row], "peers": {}, "memory": []}).split("### bf16 mixed")
    assert "nncore mixed_bfloat16" not in head
    line = next(t for t in bf16_part.splitlines() if t.startswith("| tiny | 2 |"))
    assert line.endswith("| 0.50x | 1.50x | 2.00x |")        # nncore float32, PyTorch, PyTorch autocast over it


def test_lstm_kernels_time_the_layers_cell():
    # bench/lstm_kernels.py's forward is the LSTM layer's (tanh, sigmoid): until session 16 it passed code 1
    # ("step") as tanh, so its cell figures left out the two tanh passes of a row
    from bench import lstm_kernels as lk
    s = lk.build(T=3, B=5, D=4, u=6)
    label, _, fwd = lk.kernels(s, 1)[0]
    assert label.startswith("lstm_seq_forward")
    fwd()
    W, U, b = (a.astype(np.float64) for a in (s.W, s.U, s.bias))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    u = s.u
    h, c = np.zeros((s.B, u)), np.zeros((s.B, u))
    for t in range(s.T):
        z = s.xt.reshape(s.T, s.B, s.D)[t].astype(np.float64) @ W + h @ U + b
        c = sig(z[:, u:2 * u]) * c + sig(z[:, :u]) * np.tanh(z[:, 2 * u:3 * u])
        h = sig(z[:, 3 * u:]) * np.tanh(c)
        np.testing.assert_allclose(s.h[t + 1], h, rtol=1e-5, atol=1e-6, err_msg=f"t={t}")


def test_wait_ab_policies_environment_and_table(capsys):
    # bench/wait_ab.py: each policy runs in an interpreter of its own with exactly its variables (libgomp
    # reads them once, at load), TORCH with none (torch's libgomp then loads first, as in python -m bench)
    from bench import wait_ab
    env = wait_ab.policy_env("SPIN=3000")
    assert env["GOMP_SPINCOUNT"] == "3000" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = wait_ab.policy_env("ACTIVE")
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and "GOMP_SPINCOUNT" not in env
    env = wait_ab.policy_env("TORCH")
    assert "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env
    assert wait_ab.main(["--workloads", "rnn", "--policies", "PASSIVE,SPIN=100", "--rounds", "1", "--epochs", "1",
                         "--max-samples", "256", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("rnn ")]
    assert [r[1] for r in rows] == ["PASSIVE", "SPIN=100"]
    assert all(float(r[2]) > 0 for r in rows)
