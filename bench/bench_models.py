"""Per-step cost of Sequential training: a 4-16-3 ReLU/softmax MLP at batch 16 (issue 5's ~10 us target),
and the 64-128-64-10 digits MLP at batch 32, float32, Adam.

Reports the median and the minimum over many short repeats (the machine may be shared: the minimum is
the better estimate of the cost on an idle core), for
  - one training step (model._train_step(batch, n): forward, fused loss, backward, optimizer),
  - its parts (forward + loss, backward, optimizer step),
  - a whole fit(epochs=1) per step (batching, callbacks, metrics included),
  - the same step written in PyTorch (nn.Sequential, CrossEntropyLoss, Adam) for scale.

    PYTHONPATH=. python bench/bench_models.py [--threads N]
"""
import argparse
import statistics
import time

import numpy as np

import nncore
from nncore.layers import Dense
from nncore.models import Sequential


def timeit(f, number, repeat=7, reset=None):
    ts = []
    for _ in range(repeat):
        if reset is not None:
            reset()
        t = time.perf_counter()
        for _ in range(number):
            f()
        ts.append((time.perf_counter() - t) / number * 1e6)
    return statistics.median(ts), min(ts)


def bench(sizes, batch, n_samples, threads, metrics):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_samples, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n_samples)
    nncore.set_seed(0)
    layers = [Dense(sizes[1], activation="relu", input_dim=sizes[0])]
    layers += [Dense(s, activation="relu") for s in sizes[2:-1]]
    layers += [Dense(sizes[-1], activation="softmax")]
    model = Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=metrics, n_threads=threads)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)          # warm: buffers allocated
    xb, yb = x[:batch], model.loss._prepare(y[:batch], (batch, sizes[-1]), np.float32)
    model._setup()
    one = (xb, yb, None, None)                    # a batch: inputs, targets, sample weights, metric targets
    ds = model._dbufs[batch]
    plan = model._plan
    p0 = model._params.copy()

    def reset():  # thousands of steps on one batch would drive the softmax into denormals
        model._params[...] = p0
    out = {}
    out["train step"] = timeit(lambda: model._train_step(one, batch), 100, repeat=100, reset=reset)
    reset()

    def forward_loss():
        plan.train(one, True)
        return [head(one, batch, ds) for head in model._head_steps]
    out["  forward + loss"] = timeit(forward_loss, 100, repeat=100)
    out["  backward"] = timeit(lambda: plan.backward(batch), 100, repeat=100)
    out["  optimizer.step_flat"] = timeit(lambda: model.optimizer.step_flat(model._params, model._grads), 100,
                                          repeat=100, reset=reset)
    steps = -(-n_samples // batch)
    med, mn = timeit(lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0), 2, repeat=30, reset=reset)
    out[f"fit(epochs=1) per step ({steps} steps, metrics={metrics})"] = (med / steps, mn / steps)
    try:
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        mods = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        net = torch.nn.Sequential(*mods[:-1])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        lossf = torch.nn.CrossEntropyLoss()
        tx, ty = torch.from_numpy(xb), torch.from_numpy(y[:batch])

        def tstep():
            opt.zero_grad()
            lossf(net(tx), ty).backward()
            opt.step()
        out["PyTorch step (same net, Adam)"] = timeit(tstep, 50, repeat=50)
    except ImportError:
        pass
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for sizes, batch, n in (((4, 16, 3), 16, 160), ((64, 128, 64, 10), 32, 1797)):
        print(f"MLP {'-'.join(map(str, sizes))}, batch {batch}, float32, {args.threads} thread(s): "
              "median / min microseconds")
        for metrics in ([], ["accuracy"]):
            res = bench(sizes, batch, n, args.threads, metrics)
            for k, (med, mn) in res.items():
                if metrics and not k.startswith("fit"):
                    continue
                print(f"  {k:55s} {med:9.2f} {mn:9.2f}")


if __name__ == "__main__":
    main()
