"""What the save/load tests share: a saved and reloaded model must predict the same and continue
training bit-identically (the same History and weights from the same seed)."""
import numpy as np

import nncore


def assert_resumes_identically(model, path, x, y, seed=0, **fit_kwargs):
    """Save `model` to `path`, load it, and check that predict and a further fit agree exactly."""
    model.save(path)
    loaded = nncore.load_model(path)
    bs = fit_kwargs.get("batch_size")
    np.testing.assert_array_equal(model.predict(x, batch_size=bs, verbose=0), loaded.predict(x, batch_size=bs, verbose=0))
    histories = []
    for m in (model, loaded):
        nncore.set_seed(seed)
        histories.append(m.fit(x, y, verbose=0, **fit_kwargs).history)
    assert histories[0] == histories[1]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    return loaded
