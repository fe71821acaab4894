#!/usr/bin/env python
"""The cost of Embedding's whole-number check (session 17, engineer probe): the two added passes alone, against
one Embedding forward and one training step of a text model. Thread CPU time, medians of 9, 1 thread."""
import sys
import time

import numpy as np

import nncore
from nncore.models import Sequential
from nncore import layers as L
nncore.set_num_threads(1)
if len(sys.argv) > 1:
    nncore.set_simd_level(sys.argv[1])  # python bench/embedding_check.py avx2
rng = np.random.default_rng(0)
B, T, V = 128, 28, 10000
x = rng.integers(0, V, size=(B, T)).astype(np.float32)
y = rng.integers(0, 10, size=B)
m = Sequential([L.Input((T,)), L.Embedding(V, 64), L.LSTM(128), L.Dense(10, activation="softmax")])
m.compile("adam", "sparse_categorical_crossentropy")
emb = m.layers[0]
idx = np.empty((B, T), np.int64); back = np.empty((B, T), np.float64); lost = np.empty((B, T), bool)
def check():
    np.copyto(idx, x, casting="unsafe"); np.copyto(back, idx, casting="unsafe"); np.not_equal(back, x, out=lost).any()
def cast_only():
    np.copyto(idx, x, casting="unsafe")
def fwd(): emb.forward(x)
def step(): m.train_on_batch(x, y)
def t(f, reps):
    s = time.thread_time_ns()
    for _ in range(reps): f()
    return (time.thread_time_ns() - s) / reps / 1e3
for f in (check, cast_only, fwd, step): f()
res = {k: [] for k in ("check", "cast", "fwd", "step")}
for _ in range(9):
    res["check"].append(t(check, 2000)); res["cast"].append(t(cast_only, 2000))
    res["fwd"].append(t(fwd, 2000)); res["step"].append(t(step, 20))
med = {k: float(np.median(v)) for k, v in res.items()}
print(f"simd {nncore.get_simd_level()}, 1 thread, B={B} T={T}")
print(f"cast + check (the forward's cast and the two added passes): {med['check']:.2f} us; cast alone {med['cast']:.2f} us; "
      f"added {med['check'] - med['cast']:.2f} us")
print(f"Embedding forward (with the check): {med['fwd']:.2f} us; train_on_batch Embedding->LSTM(128)->Dense: {med['step']:.0f} us")
print(f"added / step = {(med['check'] - med['cast']) / med['step'] * 100:.3f} %")
