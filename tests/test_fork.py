"""fork after nncore's OpenMP kernels have run must not hang, and children must compute what the parent does.

GNU OpenMP's thread pool does not survive fork(): a child that enters a
parallel region waits forever for threads that do not exist. nncore detects
the fork (an at-fork handler in every compiled module) and runs serially in
the child. Each scenario runs in a fresh interpreter, in its own process
group, under a timeout, with OMP_NUM_THREADS=2 so that the parent really
uses a team of two before forking.
"""
import os
import sys
import textwrap

import pytest
from subprocess_common import HOME, run_isolated  # HOME: the nncore under test, for the child processes

from nncore._kernels import runtime as rt

TIMEOUT = 60

PRELUDE = textwrap.dedent(
    f"""
    import os, sys
    sys.path.insert(0, {HOME!r})
    import numpy as np
    import nncore
    from nncore._kernels import gemm as _g, elementwise as _ew, runtime as _rt

    def work(seed=0):
        # every OpenMP-parallel kernel, with 2 threads, on sizes that get a real team in the parent
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((256, 200))
        b = rng.standard_normal((200, 192))
        bias = rng.standard_normal(192)
        c = _g.gemm(a, b, np.empty((256, 192)), bias=bias, act=4, n_threads=2)
        y = _ew.act_forward(2, 0.0, c, np.empty_like(c), 2)
        dx = _ew.act_backward(2, 0.0, None, y, c, np.empty_like(c), 2)
        s = _ew.colsum(dx, np.empty(192), 2)
        return np.concatenate([c.ravel(), y.ravel(), dx.ravel(), s, [_ew.sumsq(dx, 2)],
                               [float(_ew.all_finite(dx, 2))]])

    def check(got, ref, label):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0, err_msg=label)
    """
)


def run_script(tmp_path, body, timeout=TIMEOUT, env_extra=None):
    """Run PRELUDE + body as a script file in its own process group; kill the whole group on timeout."""
    path = tmp_path / "scenario.py"
    path.write_text(PRELUDE + textwrap.dedent(body))
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "2"
    env.pop("KMP_DUPLICATE_LIB_OK", None)
    env.update(env_extra or {})
    returncode, text = run_isolated([sys.executable, str(path)], str(tmp_path), env, timeout)
    assert returncode == 0, text
    assert "OMP: Error" not in text, text
    return text


@pytest.mark.skipif(not rt.has_openmp(), reason="built without OpenMP: no team")
def test_parent_really_runs_a_team_of_two(tmp_path):
    out = run_script(tmp_path, """
        assert _rt.has_openmp(), "built without OpenMP: nothing to test"
        print("team", _rt.team_size(2, 2.0 * 256 * 192 * 201))
    """)
    assert "team 2" in out


def test_os_fork_after_parallel_kernels(tmp_path):
    out = run_script(tmp_path, """
        ref = work()
        pids = []
        for k in range(3):
            pid = os.fork()
            if pid == 0:
                try:
                    check(work(), ref, "child")
                    # a grandchild, too
                    pid2 = os.fork()
                    if pid2 == 0:
                        check(work(), ref, "grandchild")
                        os._exit(0)
                    _, st = os.waitpid(pid2, 0)
                    os._exit(0 if st == 0 else 4)
                except BaseException as e:
                    print("child failed:", e, flush=True)
                    os._exit(3)
            pids.append(pid)
        for pid in pids:
            _, st = os.waitpid(pid, 0)
            assert st == 0, st
        check(work(), ref, "parent after fork")  # the parent keeps its team
        print("ok")
    """)
    assert "ok" in out


def test_fork_from_c_bypassing_python_hooks(tmp_path):
    """A fork() made by C code (no os.register_at_fork hooks) is detected too."""
    out = run_script(tmp_path, """
        import ctypes
        ref = work()
        libc = ctypes.CDLL(None)
        pid = libc.fork()
        if pid == 0:
            ok = np.allclose(work(), ref, rtol=1e-12, atol=0)
            os._exit(0 if ok else 3)
        _, st = os.waitpid(pid, 0)
        assert st == 0, st
        print("ok")
    """)
    assert "ok" in out


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_start_methods(tmp_path, method):
    out = run_script(tmp_path, f"""
        import multiprocessing as mp

        def child(q):
            q.put(work())

        if __name__ == "__main__":
            ref = work()
            ctx = mp.get_context({method!r})
            q = ctx.Queue()
            p = ctx.Process(target=child, args=(q,))
            p.start()
            got = q.get(timeout=60)
            p.join(60)
            assert p.exitcode == 0, p.exitcode
            check(got, ref, {method!r})
            print("ok")
    """)
    assert "ok" in out


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_of_two_workers(tmp_path, method):
    out = run_script(tmp_path, f"""
        import multiprocessing as mp

        if __name__ == "__main__":
            ref = [work(s) for s in range(4)]
            with mp.get_context({method!r}).Pool(2) as pool:
                got = pool.map(work, range(4))
            for s in range(4):
                check(got[s], ref[s], f"seed {{s}}")
            print("ok")
    """)
    assert "ok" in out


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_of_two_predicting(tmp_path, method):
    """A trained model predicts in Pool(2) workers: forked children inherit it, spawned ones load it."""
    out = run_script(tmp_path, f"""
        import multiprocessing as mp
        from nncore.layers import Dense, Input

        _model = None

        def predict_chunk(args):
            global _model
            path, x = args
            if _model is None:
                _model = nncore.load_model(path)
            return _model.predict(x, batch_size=64, verbose=0)

        if __name__ == "__main__":
            rng = np.random.default_rng(0)
            x = rng.standard_normal((2048, 40))
            y = np.eye(4)[rng.integers(0, 4, 2048)]
            nncore.set_seed(0)
            m = nncore.Sequential([Input(shape=(40,)), Dense(256, activation="relu"), Dense(4, activation="softmax")])
            m.compile(optimizer="adam", loss="categorical_crossentropy")
            m.fit(x, y, epochs=1, batch_size=256, verbose=0)   # 2-thread kernels run in the parent
            ref = m.predict(x, batch_size=64, verbose=0)
            m.save("m.nncore")
            if {method!r} == "fork":
                _model = m
            chunks = [("m.nncore", x[i:i + 512]) for i in range(0, 2048, 512)]
            with mp.get_context({method!r}).Pool(2) as pool:
                got = np.concatenate(pool.map(predict_chunk, chunks))
            np.testing.assert_array_equal(got, ref)
            print("ok")
    """)
    assert "ok" in out
