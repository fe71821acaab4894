"""The measurements behind ``model.quantize``'s default choice of int8 convolutions
(``nncore.layers.conv.conv_costs``, ``_CONV_COST``).

    python bench/conv_int8_rule.py [--simd generic,avx2,avx512] [--repeats 5] [--batch 64] [--quick] [--fit]

For each convolution shape (3x3 stride-1 'same' layers, which Winograd may take, and 5x5 / strided ones,
which im2col takes), one Conv2D layer with a relu: predict of a batch, 1 thread, thread CPU time, medians
of ``--repeats`` with the forms taking turns, at each SIMD level: float32 by the layer's own path, float32
by im2col (where Winograd is the own path), int8 on 7-bit inputs (the default) and on 8-bit ones. The
table gives ns per output pixel of each form, the measured f32 / int8 (own path, 7-bit) and the rule's.
``--fit`` then fits each form's linear cost model (nonnegative least squares, relative error) and prints
the ``_CONV_COST`` tables to paste into nncore/layers/conv.py.
"""
import argparse
import time

import numpy as np


def shapes(quick):
    """(h, w, c, filters, kernel, strides, padding)"""
    out = []
    for c in ((1, 8, 32) if quick else (1, 2, 3, 4, 8, 16, 32, 64, 128)):
        for f in ((32,) if quick else (16, 64, 128)):
            out.append((28 if c <= 16 else 14, 28 if c <= 16 else 14, c, f, 3, 1, "valid" if f == 64 else "same"))
    out.append((13, 13, 32, 64, 3, 1, "valid"))   # the cnn row's second conv
    out.append((13, 13, 32, 64, 3, 1, "same"))
    out.append((7, 7, 64, 64, 3, 1, "same"))
    for c in ((1, 16) if quick else (1, 3, 8, 16, 32)):
        for f in ((32,) if quick else (16, 64)):
            out.append((28, 28, c, f, 5, 1, "same"))      # 5x5: im2col
            out.append((28, 28, c, f, 3, 2, "same"))      # stride 2: im2col
    return out


def _time(fn):
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


FORMS = ("f32", "im2col", "int8", "int8_127")


def measure(args):
    import nncore
    from nncore.layers.conv import int8_gain, winograd_tile
    from nncore.quantizers import AbsMaxQuantizer, DEFAULT_ACTIVATION_RANGE, Int8QuantizationConfig

    nncore.set_num_threads(1)
    rng = np.random.default_rng(0)
    cfg127 = Int8QuantizationConfig(activation_quantizer=AbsMaxQuantizer(value_range=(-127, 127)))
    rows = []
    print("| shape (h w c, filters, kernel, stride, padding) | level | float path | ns/pixel: f32 | im2col | int8 | int8 (|x| "
          "<= 127) | f32 / int8 | rule's |")
    print("|---|---|---|---|---|---|---|---|---|")
    for h, w, c, f, ks, st, pad in shapes(args.quick):
        x = rng.standard_normal((args.batch, h, w, c)).astype(np.float32)
        models = {}
        for form in FORMS:
            m = nncore.Sequential([nncore.layers.Input((h, w, c)),
                                   nncore.layers.Conv2D(f, ks, strides=st, padding=pad, activation="relu")])
            if models:
                m.set_weights(models["f32"].get_weights())
            if form == "im2col":
                m.layers[-1]._wino_ok = False
            if form.startswith("int8"):
                m.quantize("int8", filters=lambda layer: True, config=cfg127 if form == "int8_127" else None)
            models[form] = m
        conv = models["f32"].layers[-1]
        tile = conv._wino_ok and winograd_tile(args.batch, conv._out, c, ks)
        forms = [fm for fm in FORMS if fm != "im2col" or tile]
        pixels = args.batch * conv._out[0] * conv._out[1]
        for level in args.simd.split(","):
            nncore.set_simd_level(level)
            ts = {fm: [] for fm in forms}
            for fm in forms:
                models[fm].predict(x, batch_size=len(x), verbose=0)
            for _ in range(args.repeats):
                for fm in forms:
                    ts[fm].append(_time(lambda: models[fm].predict(x, batch_size=len(x), verbose=0)))
            ns = {fm: float(np.median(t)) / pixels * 1e9 for fm, t in ts.items()}
            gain = int8_gain(models["f32"].layers[-1], DEFAULT_ACTIVATION_RANGE)
            print(f"| {h}x{w}x{c}, {f}, {ks}x{ks}, {st}, {pad} | {level} | {'winograd F(%d)' % tile if tile else 'im2col'} "
                  f"| {ns['f32']:.2f} | {ns.get('im2col', ns['f32']):.2f} | {ns['int8']:.2f} | {ns['int8_127']:.2f} | "
                  f"{ns['f32'] / ns['int8']:.2f}x | {gain:.2f}x |", flush=True)
            rows.append(dict(level=level, kh=ks, c=c, n=f, out=list(conv._out), tile=int(tile), **ns))
        nncore.set_simd_level(None)
    return rows


def _nnls_rel(features, times):
    from scipy.optimize import nnls

    a = np.array(features, float) / np.array(times)[:, None]      # relative error: each row divided by its time
    coef, _ = nnls(a, np.ones(len(times)))
    return coef


def fit(rows):
    from nncore.layers.conv import _INT8_REF_BATCH  # noqa: F401  (the rule's batch: the tables' meaning)

    def row_features(r):
        k = r["kh"] * r["kh"] * r["c"]
        return (1, k, r["kh"], r["n"], k * r["n"])

    def wino_features(r):
        m = r["tile"]
        oh, ow = r["out"]
        t, per = (m + 2) ** 2, -(-oh // m) * -(-ow // m) / (oh * ow)
        return tuple(per * v for v in (1, t * r["c"], t * r["n"], t * r["c"] * r["n"]))

    tables = {"im2col": {}, "winograd": {}, "int8": {}}
    for level in sorted({r["level"] for r in rows}):
        rs = [r for r in rows if r["level"] == level]
        tables["im2col"][level] = _nnls_rel([row_features(r) for r in rs], [r["im2col"] if r["tile"] else r["f32"]
                                                                            for r in rs])
        wr = [r for r in rs if r["tile"]]
        tables["winograd"][level] = _nnls_rel([wino_features(r) for r in wr], [r["f32"] for r in wr])
        kernel = {"generic": "generic", "avx2": "avx2", "avx512": "avx512vnni"}[level]
        tables["int8"][kernel] = _nnls_rel([row_features(r) for r in rs], [r["int8"] for r in rs])
        if level == "avx2":
            tables["int8"]["avx2-sign"] = _nnls_rel([row_features(r) for r in rs], [r["int8_127"] for r in rs])
    print("\n_CONV_COST = {")
    for form, per in tables.items():
        body = ", ".join(f'"{name}": ({", ".join("%.4g" % v for v in coef)})' for name, coef in per.items())
        print(f'    "{form}": {{{body}}},')
    print("}")
    wrong = []
    for r in rows:   # the fitted rule's choice against the measured one (int8 where >= 10% faster)
        kernel = {"generic": "generic", "avx2": "avx2", "avx512": "avx512vnni"}[r["level"]]
        f32 = _dot(tables["winograd" if r["tile"] else "im2col"][r["level"]],
                   wino_features(r) if r["tile"] else row_features(r))
        pred, meas = f32 / _dot(tables["int8"][kernel], row_features(r)), r["f32"] / r["int8"]
        if (pred >= 1.1) != (meas >= 1.0) or (meas >= 1.1) != (pred >= 1.0):
            wrong.append(f"{r['level']} c {r['c']} n {r['n']} {r['kh']}x{r['kh']}: measured {meas:.2f}x, "
                         f"fitted {pred:.2f}x")
    print(f"\n{len(wrong)} of {len(rows)} choices off the measured side:", *wrong, sep="\n  ")
    return tables


def _dot(coef, features):
    return float(np.dot(coef, features))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/conv_int8_rule.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--simd", default="generic,avx2,avx512")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--fit", action="store_true")
    p.add_argument("--json", help="write the measured rows to this file")
    p.add_argument("--load", help="fit the rows of this --json file instead of measuring")
    args = p.parse_args(argv)
    import json

    if args.load:
        with open(args.load) as fh:
            rows = json.load(fh)
    else:
        rows = measure(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh)
    if args.fit:
        fit(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
