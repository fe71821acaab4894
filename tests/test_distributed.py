"""Data-parallel training over MPI: N ranks with batch b against one process with batch N b.

Each multi-rank test starts ``mpiexec -n N python tests/mpi_scenarios.py`` in a subprocess
(with a timeout: a hang fails the test) and compares what rank 0 saved with the same
scenario run here in one process. Without mpi4py or mpiexec (the ``mpi`` extra) they skip.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import nncore
from nncore import distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mpi_scenarios as S  # noqa: E402
from subprocess_common import run_isolated  # noqa: E402

B = 4          # rows per rank and step
TIMEOUT = 180

EQUIVALENT = ["arrays", "class_weights", "binary_float32", "evaluate_predict", "sequence", "generator", "memmap",
              "stop_on_one_rank", "functional", "functional_shared"]


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="mpi4py and mpiexec are not installed (pip install -e '.[mpi]')")


def mpirun(n, outdir, *scenarios):
    """Run scenarios on n ranks; returns (return code, stdout and stderr). A hang fails the test
    (the whole job is killed after TIMEOUT s)."""
    e = dict(os.environ, OMP_NUM_THREADS="1", NNCORE_TEST_BATCH=str(B))
    cmd = [MPIEXEC, "-n", str(n), sys.executable, os.path.join(HERE, "mpi_scenarios.py"), str(outdir), *scenarios]
    return run_isolated(cmd, HERE, e, TIMEOUT)


@pytest.fixture(scope="module", params=[2, 3])
def ranks(request, tmp_path_factory):
    """Every equivalence scenario on N ranks in one job: (N, output directory)."""
    if MPIEXEC is None:
        pytest.skip("mpi4py and mpiexec are not installed (pip install -e '.[mpi]')")
    n = request.param
    outdir = tmp_path_factory.mktemp(f"mpi{n}")
    rc, out = mpirun(n, outdir, *EQUIVALENT)
    assert rc == 0, out
    return n, outdir


def single(name, batch, tmp_path):
    """The scenario in this process (a world of one rank) with the global batch."""
    old = nncore.floatx()
    S._outdir = str(tmp_path)
    try:
        return S.__dict__[name](0, 1, batch)
    finally:
        nncore.set_floatx(old)


def compare(name, ranks, tmp_path, rtol=1e-10, atol=1e-12):
    n, outdir = ranks
    got = np.load(os.path.join(outdir, name + ".npz"))
    want = single(name, n * B, tmp_path)
    assert sorted(got.files) == sorted(want), name
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol, err_msg=f"{name}: {key} on {n} ranks")
    return got, want


@pytest.mark.parametrize("name", ["arrays", "class_weights", "evaluate_predict", "memmap", "sequence", "generator",
                                  "stop_on_one_rank", "functional", "functional_shared"])
def test_n_ranks_match_one_process_with_the_global_batch(name, ranks, tmp_path):
    # weights, every History entry (loss, metrics, val_*), predictions: to float64 round-off
    got, _ = compare(name, ranks, tmp_path)
    if name == "sequence":
        assert got["ends"] == 3 and got["in_sync"]           # on_epoch_end once per epoch; shuffled: in sync
    if name == "generator":
        steps = 2 * 72 // (ranks[0] * B)                     # 5 per epoch: the last epoch is short, then none
        assert got["warned"] and len(got["h_loss"]) == -(-steps // 5) < 7
    if name == "stop_on_one_rank":
        assert got["epochs1"] == 2 and got["epochs2"] == 1
    if name == "functional":
        assert got["overlapped"]          # one bucket per layer (h, g, hh, cls, reg) started during backward


def test_float32_and_batch_listeners_match(ranks, tmp_path):
    # float32 round-off; a batch listener makes the metric sums per step: its logs match too
    got, want = compare("binary_float32", ranks, tmp_path, rtol=2e-5, atol=2e-6)
    assert len(got["batch_losses"]) == len(want["batch_losses"]) > 3


def test_uneven_last_batches_are_what_the_scenarios_exercise():
    # the shapes above give short last global batches, split unevenly, with an empty share on 3 ranks
    from nncore.data import share_of
    train = int(np.floor(63 * 0.8))                   # "arrays": 50 training rows
    assert train % (3 * B) == 2 and [share_of(2, r, 3) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]
    assert 47 % (2 * B) == 7 and [share_of(7, r, 2) for r in range(2)] == [(0, 4), (4, 7)]


@needs_mpi
def test_batchnorm_and_frozen_layers_stay_in_sync(tmp_path):
    # each rank normalizes by its share (no SyncBatchNorm); the moving statistics are averaged at each
    # epoch's end, so the ranks agree; a frozen layer is neither updated nor reduced
    rc, out = mpirun(2, tmp_path, "batchnorm_frozen")
    assert rc == 0, out
    got = np.load(os.path.join(tmp_path, "batchnorm_frozen.npz"))
    assert got["in_sync"] and got["frozen_same"] and got["moved"] and got["bucketed"]
    assert np.all(np.isfinite(got["h_loss"])) and len(got["h_loss"]) == 2


@needs_mpi
def test_only_rank_0_prints_and_writes(tmp_path):
    rc, out = mpirun(2, tmp_path, "files_and_output")
    assert rc == 0, out
    assert out.count("Epoch 1/2") == 1 and out.count("Epoch 2/2") == 1
    assert sorted(f for f in os.listdir(tmp_path) if not f.endswith(".npz")) == \
        ["ckpt_rank0.nnc", "log_rank0.csv", "model_rank0.nnc"]
    nncore.load_model(os.path.join(tmp_path, "model_rank0.nnc"))
    # one thread per rank by default when two ranks share this machine's CPUs
    cpus = len(os.sched_getaffinity(0))
    threads = [int(np.load(os.path.join(tmp_path, f))["threads"]) for f in
               ("files_and_output.npz", "files_and_output.rank1.npz")]
    assert threads[0] == threads[1] == max(1, cpus // 2)


@needs_mpi
def test_check_in_sync_names_the_rank_that_differs(tmp_path):
    rc, out = mpirun(3, tmp_path, "in_sync_check")
    assert rc == 0, out
    r = np.load(os.path.join(tmp_path, "in_sync_check.npz"))
    assert r["ok"] and "rank(s) [2] differ from rank 0's" in str(r["message"])


@needs_mpi
@pytest.mark.parametrize("scenario, message", [
    ("fault_callback", "ValueError: boom on rank 1"),
    ("fault_bad_input", "inputs contain NaN or infinity"),
    ("fault_models", "the ranks disagree on model (rank 0: 66 parameters: Dense(5x7, 7), Dense(7x3, 3), float32; "
                     "rank 1: 84 parameters: Dense(5x9, 9), Dense(9x3, 3), float32)"),
    ("fault_generator", "x of batch 3: layer 'dense' (Dense) of model 'sequential' expects input of shape "
                        "(n_samples, 5), got (4, 4)"),
])
def test_a_failing_rank_ends_the_job_with_its_message(scenario, message, tmp_path):
    rc, out = mpirun(2, tmp_path, scenario)
    assert rc != 0
    assert message in out, out
    assert "aborting the MPI job" in out


# ---------------------------------------------------------------- one process, no launcher
def test_without_mpiexec_the_world_has_one_rank(monkeypatch):
    for var in dist._LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    if "mpi4py.MPI" in sys.modules:
        pytest.skip("mpi4py.MPI is imported in this process")
    dist.init()
    dist.init()                                              # idempotent
    assert dist.is_initialized() and (dist.rank(), dist.size()) == (0, 1)
    assert "mpi4py.MPI" not in sys.modules                   # nothing imported
    dist.barrier()
    x, y, _, _ = S.data()
    model = S.mlp(1)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert dist.check_in_sync(model)
    dist.shutdown()
    assert not dist.is_initialized()
    nncore.set_floatx("float32")


def test_launched_without_mpi4py_is_a_clear_import_error(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)           # import mpi4py fails
    monkeypatch.delitem(sys.modules, "mpi4py.MPI", raising=False)
    with pytest.raises(ImportError, match=r"started by an MPI launcher \(PMI_SIZE=2\).*nncore\[mpi\]"):
        dist.init()
    assert not dist.is_initialized()


def test_metrics_without_a_sum_state_are_refused_by_name():
    class Odd(nncore.metrics.Metric):
        pass
    with pytest.raises(TypeError, match="metric 'odd' \\(Odd\\) cannot be combined across MPI ranks"):
        dist._pack([Odd()])


def test_tally_round_trip_keeps_types():
    m = [nncore.metrics.Precision(), nncore.metrics.AUC(num_thresholds=5), nncore.metrics.Mean()]
    m[0].update_state([1, 0, 1], [0.9, 0.8, 0.2])
    m[1].update_state([1, 0, 1], [0.9, 0.8, 0.2])
    m[2].update_state([1.0, 2.0])
    before = [x.result() for x in m]
    dist._unpack(m, dist._pack(m))
    assert [x.result() for x in m] == before and isinstance(m[0]._one, list)


# ---------------------------------------------------------------- the example
EXAMPLE = os.path.join(os.path.dirname(HERE), "examples", "distributed_mnist.py")


def test_distributed_example_runs_in_one_process():
    pytest.importorskip("sklearn")
    import importlib.util
    spec = importlib.util.spec_from_file_location("distributed_mnist", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(epochs=4, verbose=0)
    assert res["ranks"] == 1 and res["accuracy"] > 0.9


@needs_mpi
def test_distributed_example_runs_under_mpiexec(tmp_path):
    pytest.importorskip("sklearn")
    ckpt = tmp_path / "best.nnc"
    e = dict(os.environ, OMP_NUM_THREADS="1", VERBOSE="0")
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, EXAMPLE, "6", str(ckpt)], capture_output=True,
                          text=True, env=e, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if "test accuracy" in ln]
    assert len(line) == 1 and line[0].startswith("2 rank(s) x 1 thread(s)")    # rank 0 alone prints
    assert float(line[0].split("test accuracy ")[1].split(",")[0]) > 0.9
    assert nncore.load_model(ckpt).count_params() == 784 * 128 + 128 + 1290
