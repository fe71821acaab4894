"""What the no-allocation-in-steady-state tests share: the memory a fit leaves behind between two epochs,
and the peak above the start during a call (tracemalloc)."""
import tracemalloc

import nncore


def growth_between_epochs(model, *args, first=1, last=5, **fit_kwargs):
    """Bytes that nncore's own lines hold at the end of epoch `last` and did not at the end of epoch
    `first`, over model.fit(*args, epochs=last + 1, **fit_kwargs). Numpy arrays count at the nncore line
    that made them; the interpreter's lazy caches elsewhere would make the figure flaky."""
    snaps = {}

    class Snap(nncore.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch in (first, last):
                snaps[epoch] = tracemalloc.take_snapshot()

    tracemalloc.start()
    try:
        model.fit(*args, epochs=last + 1, callbacks=[Snap()], **fit_kwargs)
    finally:
        tracemalloc.stop()
    own = [tracemalloc.Filter(True, "*/nncore/*")]
    later, before = snaps[last].filter_traces(own), snaps[first].filter_traces(own)
    return sum(s.size_diff for s in later.compare_to(before, "filename") if s.size_diff > 0)


def peak_above_start(run):
    """The most memory run() held at once beyond what was allocated when it started."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
