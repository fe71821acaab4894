"""nncore next to other OpenMP users and under concurrent callers.

- imported before or after torch, scikit-learn and numpy, in several orders:
  no "OMP: Error #15", no hang, and nncore never sets KMP_DUPLICATE_LIB_OK;
- several Python threads calling the kernels at once give the serial results
  (the kernels keep no shared mutable state);
- threadpoolctl limits nncore's OpenMP, and joblib's process workers do not
  oversubscribe the CPU.
"""
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import nncore
from nncore._kernels import elementwise as _ew
from nncore._kernels import gemm as _g
from nncore._kernels import runtime as _rt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from subprocess_common import CHILD_CWD, HOME  # noqa: E402  (the nncore under test, for child processes)


def _work(seed, n_threads):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((180, 150))
    b = rng.standard_normal((150, 130))
    c = _g.gemm(a, b, np.empty((180, 130)), bias=rng.standard_normal(130), act=3, n_threads=n_threads)
    y = _ew.act_forward(12, 0.0, c, np.empty_like(c), n_threads)
    dx = _ew.act_backward(12, 0.0, c, y, y, np.empty_like(c), n_threads)
    s = _ew.colsum(dx, np.empty(130), n_threads)
    return c, y, dx, s


# ---- other libraries in the same process --------------------------------------------------------------
SCENARIO = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {home!r})
    order = {order!r}
    for name in order:
        if name == "nncore":
            had = "KMP_DUPLICATE_LIB_OK" in os.environ  # scikit-learn sets it (setdefault) on import
            import nncore
            assert had or "KMP_DUPLICATE_LIB_OK" not in os.environ, "nncore set KMP_DUPLICATE_LIB_OK"
        elif name == "torch":
            import torch
        elif name == "sklearn":
            import sklearn.cluster
        else:
            import numpy
    import numpy as np, torch, sklearn.cluster, nncore
    from nncore._kernels import gemm as _g
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200))
    for _ in range(2):  # interleave the three OpenMP users
        c = _g.gemm(a, a.T.copy(), np.empty((300, 300)), n_threads=2)
        t = torch.from_numpy(a) @ torch.from_numpy(a).T
        km = sklearn.cluster.KMeans(3, n_init=1, random_state=0).fit(a)
    np.testing.assert_allclose(c, t.numpy(), rtol=1e-10, atol=1e-10)
    # and a model trains and predicts next to them
    from nncore.layers import Dense, Input
    y = np.eye(3)[km.labels_]
    m = nncore.Sequential([Input(shape=(200,)), Dense(64, activation="relu"), Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(a, y, epochs=3, batch_size=32, verbose=0).history["loss"]
    assert h[-1] < h[0], h
    p = m.predict(a, verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    print("ok", torch.get_num_threads())
    """
)


ORDERS = [
    ("nncore", "torch", "sklearn", "numpy"),
    ("torch", "sklearn", "numpy", "nncore"),
    ("sklearn", "nncore", "torch", "numpy"),
]


def test_import_orders_with_torch_and_sklearn(tmp_path):
    """Each order in a fresh interpreter; the interpreters run side by side to keep the test short."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("KMP_DUPLICATE_LIB_OK", None)
    procs = [
        subprocess.Popen([sys.executable, "-c", SCENARIO.format(home=HOME, order=order)], env=env,
                         cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
        for order in ORDERS
    ]
    failures = []
    for order, proc in zip(ORDERS, procs):
        try:
            out, _ = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            pytest.fail(f"import order {order} hung")
        text = out.decode(errors="replace")
        if proc.returncode != 0 or "OMP: Error" in text or "ok" not in text:
            failures.append(f"{order}: exit {proc.returncode}\n{text}")
    assert not failures, "\n".join(failures)


def test_nncore_never_sets_kmp_duplicate_lib_ok(tmp_path):
    code = (f"import os, sys; sys.path.insert(0, {HOME!r}); import nncore, numpy as np; "
            "from nncore._kernels import gemm; a = np.ones((300, 300)); gemm.gemm(a, a, a.copy(), n_threads=2); "
            "print(os.environ.get('KMP_DUPLICATE_LIB_OK'))")
    env = dict(os.environ)
    env.pop("KMP_DUPLICATE_LIB_OK", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=CHILD_CWD, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "None", out
    for dirpath, _, files in os.walk(os.path.join(ROOT, "nncore")):
        for f in files:
            if f.endswith((".py", ".pyx", ".pxd", ".pxi")):
                with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                    assert "KMP_DUPLICATE_LIB_OK" not in fh.read(), f


# ---- Python threads -------------------------------------------------------------------------------------
def test_threads_calling_kernels_match_serial():
    serial = {s: _work(s, 2) for s in range(6)}
    results = {}
    errors = []
    barrier = threading.Barrier(6)

    def run(seed):
        try:
            barrier.wait()
            for _ in range(3):
                results[seed] = _work(seed, 2)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    for s in range(6):
        for got, ref in zip(results[s], serial[s]):
            np.testing.assert_array_equal(got, ref)


def test_threads_sharing_inputs_match_serial():
    """Many threads read the same inputs and write their own outputs."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((200, 120))
    b = rng.standard_normal((120, 90))
    ref = _g.gemm(a, b, np.empty((200, 90)), n_threads=1)
    outs = [np.full((200, 90), np.nan) for _ in range(8)]

    def run(i):
        for _ in range(5):
            _g.gemm(a, b, outs[i], n_threads=2)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for o in outs:
        np.testing.assert_array_equal(o, ref)


# ---- thread limits --------------------------------------------------------------------------------------
def test_threadpoolctl_limits_nncore():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _rt.has_openmp():
        pytest.skip("built without OpenMP")
    big = 2.0 * 500 * 500 * 500
    before = _rt.team_size(2, big)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _rt.omp_max_threads() == 1
        assert _rt.team_size(2, big) == 1
        c1 = _work(0, 2)
    assert _rt.team_size(2, big) == before
    for x, y in zip(c1, _work(0, 2)):
        np.testing.assert_array_equal(x, y)


def _worker_threads(_):
    import nncore as nc
    from nncore._kernels import runtime as rt

    return nc.get_num_threads(), rt.team_size(nc.get_num_threads(), 1e12)


def test_joblib_workers_do_not_oversubscribe():
    joblib = pytest.importorskip("joblib")
    n_cpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env_root = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = HOME + (os.pathsep + env_root if env_root else "")
    try:
        res = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(_worker_threads)(i) for i in range(4))
    finally:
        if env_root:
            os.environ["PYTHONPATH"] = env_root
        else:
            del os.environ["PYTHONPATH"]
    for threads, team in res:
        assert 2 * team <= max(n_cpu, 2), res
        assert 2 * threads <= max(n_cpu, 2), res


def test_set_num_threads_bounds_the_team():
    old = nncore.get_num_threads()
    try:
        nncore.set_num_threads(1)
        from nncore._threads import effective_n_threads

        assert _rt.team_size(effective_n_threads(None), 1e12) == 1
    finally:
        nncore.set_num_threads(old)


# ---- models: threads and determinism ---------------------------------------------------------------------
from nncore.layers import Dense, Dropout, Input  # noqa: E402


def _mlp(seed=0, dropout=False):
    nncore.set_seed(seed)
    layers = [Input(shape=(32,)), Dense(96, activation="relu")]
    if dropout:
        layers.append(Dropout(0.2, seed=seed))
    layers += [Dense(48, activation="tanh"), Dense(3, activation="softmax")]
    m = nncore.Sequential(layers)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    return m


def _xy(seed=0, n=384):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 32)), np.eye(3)[rng.integers(0, 3, n)]


def _run_threads(target, n):
    errors = []
    barrier = threading.Barrier(n)

    def wrapped(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors


def test_threads_predicting_on_one_model_match_serial():
    m = _mlp()
    xs = [_xy(s)[0] for s in range(6)]
    ref = [m.predict(x, batch_size=32, verbose=0) for x in xs]
    got = {}

    def run(i):
        for _ in range(5):
            got[i] = m.predict(xs[i], batch_size=32, verbose=0)
            np.testing.assert_array_equal(got[i], ref[i])

    _run_threads(run, 6)


def test_threads_training_separate_models_match_serial():
    # models are built in this thread: nncore.set_seed and the initializers use the one global
    # generator, so building concurrently would interleave its draws; training uses none of it
    # (shuffle=False, Dropout has its own seeded generator)
    def train(models, i):
        x, y = _xy(i)
        models[i].fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)

    serial = [_mlp(seed=i, dropout=True) for i in range(4)]
    for i in range(4):
        train(serial, i)
    parallel = [_mlp(seed=i, dropout=True) for i in range(4)]
    _run_threads(lambda i: train(parallel, i), 4)
    for i in range(4):
        for a, b in zip(parallel[i].get_weights(), serial[i].get_weights()):
            np.testing.assert_array_equal(a, b)


DETERMINISM = textwrap.dedent(
    """
    import sys, hashlib
    sys.path.insert(0, {home!r})
    import numpy as np, nncore
    from nncore.layers import Dense, Dropout, Input
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 64)); y = np.eye(5)[rng.integers(0, 5, 512)]
    for nt in (1, 2, 3):
        nncore.set_num_threads(nt)
        nncore.set_seed(42)
        m = nncore.Sequential([Input(shape=(64,)), Dense(256, activation="relu"), Dropout(0.2),
                               Dense(128, activation="tanh"), Dense(5, activation="softmax")])
        m.compile(optimizer="adam", loss="categorical_crossentropy")
        m.fit(x, y, epochs=2, batch_size=64, verbose=0)
        print(nt, hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest())
    """
)


def test_same_seed_same_bits_across_runs_and_thread_counts():
    """Documented: the same seed gives bit-identical weights from run to run, and (today's kernels
    split work by rows/columns and reduce in a fixed chunk order) for any thread count."""
    env = dict(os.environ, OMP_NUM_THREADS="3")
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", DETERMINISM.format(home=HOME)], env=env, cwd=CHILD_CWD,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        runs.append(dict(line.split() for line in out.stdout.strip().splitlines()))
    assert runs[0] == runs[1], "not reproducible from run to run"
    assert len(set(runs[0].values())) == 1, f"differs across thread counts: {runs[0]}"
