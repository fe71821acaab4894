"""The package imports, reports its configuration and controls threads."""
import pytest

import nncore


def test_show_config(capsys):
    nncore.show_config()
    out = capsys.readouterr().out
    assert "openmp" in out and "simd" in out and "float32" in out


def test_set_num_threads_roundtrip():
    old = nncore.get_num_threads()
    try:
        nncore.set_num_threads(1)
        assert nncore.get_num_threads() == 1
    finally:
        nncore.set_num_threads(old)


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_non_positive(bad):
    with pytest.raises(ValueError):
        nncore.set_num_threads(bad)
