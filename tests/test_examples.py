"""The examples run (shortened) and reach sensible answers; `python -m nncore demo` too."""
import contextlib
import importlib.util
import os
import subprocess
import sys

import pytest

import nncore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from subprocess_common import CHILD_CWD, child_env  # noqa: E402  (the nncore under test, for child processes)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_binary_classifier():
    res = _load("binary_classifier").main(epochs=3)     # batch_size=1 as in the issue
    assert res["accuracy"] > 0.8


def test_mnist_softmax():
    res = _load("mnist_softmax").main(epochs=3)
    assert res["accuracy"] > 0.9


def test_iris():
    assert _load("iris").main(epochs=100)["accuracy"] >= 0.93


def test_custom_mlp():
    res = _load("custom_mlp").main(epochs=5, verbose=False)
    assert res["accuracy"] > 0.9


def test_linear_regression(tmp_path):
    pytest.importorskip("matplotlib")                 # the example draws its fit
    out = str(tmp_path / "fit.png")
    res = _load("linear_regression").main(out, verbose=False)
    assert abs(res["w"] - res["w_ls"]) < 1e-3 and abs(res["b"] - res["b_ls"]) < 1e-3
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_demo_command():
    proc = subprocess.run([sys.executable, "-m", "nncore", "demo", "--epochs", "3", "--verbose", "1"],
                          cwd=CHILD_CWD, env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout and "samples/s" in proc.stdout
    assert "Epoch 3/3" in proc.stdout
    acc = float(proc.stdout.split("test accuracy:")[1].split()[0])
    assert acc > 0.9


def test_cnn_digits():
    res = _load("cnn_digits").main(epochs=5)
    assert res["accuracy"] > 0.93
    assert res["accuracy"] - res["int8_accuracy"] <= 0.005     # model.quantize("int8") keeps it


def test_cnn_digits_mixed_bfloat16():
    module = _load("cnn_digits")
    f32 = module.main(epochs=5)
    with pytest.warns(RuntimeWarning, match="no speed-up") if not _bf16_native() else contextlib.nullcontext():
        nncore.mixed_precision._warned = False
        bf16 = module.main(epochs=5, policy="mixed_bfloat16")
    assert bf16["accuracy"] >= f32["accuracy"] - 0.005, (f32, bf16)   # the float32 accuracy within 0.5 points
    assert nncore.mixed_precision.global_policy().name == "float32"


def _bf16_native():
    return nncore.mixed_precision.bf16_kernel() == "avx512bf16"


def test_resnet_digits():
    res = _load("resnet_digits").main(epochs=10)
    assert res["accuracy"] > 0.98


def test_lstm_digits():
    res = _load("lstm_digits").main(epochs=15)
    assert res["accuracy"] > 0.92


def test_export_onnx(tmp_path):
    import pytest

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    res = _load("export_onnx").main(str(tmp_path / "digits.onnx"))
    assert res["accuracy"] > 0.9 and res["max_diff"] < 1e-5

def test_sklearn_pipeline():
    res = _load("sklearn_pipeline").main(n_jobs=1, epochs=30, verbose=False)
    assert res["accuracy"] > 0.93 and res["cv_accuracy"] > 0.93 and res["same_after_pickle"]


def test_two_moons(tmp_path):
    pytest.importorskip("matplotlib")                 # the example draws its decision boundary
    res = _load("two_moons").main(epochs=30, out=str(tmp_path / "moons"))
    assert res["accuracy"] > 0.9
    for path in res["paths"]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
