"""The cnn row's two Conv2D -> MaxPooling2D pairs, kernel by kernel: the fused kernels against the unfused
chain they replace, interleaved in one process, thread CPU time (medians of 5 x 5).

    flock /work/lead/bench.lock python -m bench.conv_pool_kernels [avx2|avx512]

uf/ff: conv1 (128x28x28x1 -> 26x26x32, im2col, relu) forward: conv_forward + maxpool_forward / conv_pool_forward;
ub/fb: its backward: maxpool_backward + conv_backward_weights / conv_pool_backward_weights (no dx: first layer);
wuf/wff: conv2 (128x13x13x32 -> 11x11x64, Winograd F(4x4), relu) forward: wino_forward + maxpool_forward /
wino_pool_forward; wub/wfb: backward with dx: maxpool_backward + act_backward + colsum + wino_backward /
unpool2_colsum + wino_pool_backward. ms per call.
"""
import time, sys, numpy as np, nncore
from nncore._kernels import conv as K, elementwise as E, ACT_CODES
R = ACT_CODES["relu"]
if len(sys.argv) > 1: nncore.set_simd_level(sys.argv[1])
rng = np.random.default_rng(0)
clock = time.thread_time
def med(f, reps=15):
    f(); ts = []
    for _ in range(reps):
        t0 = clock(); f(); ts.append(clock() - t0)
    return np.median(ts) * 1e3
# conv1: 128x28x28x1 -> 26x26x32 (im2col), pool 13x13
n = 128
x = rng.standard_normal((n, 28, 28, 1)).astype(np.float32); kern = rng.standard_normal((9, 32)).astype(np.float32) * .3
b = np.zeros(32, np.float32); geo = ((3, 3), (1, 1), (1, 1), (0, 0), (26, 26))
y = np.empty((n * 676, 32), np.float32); yp = np.empty((n, 13, 13, 32), np.float32); idx = np.empty(yp.shape, np.int32)
ix = np.empty(yp.shape, np.uint8); dyp = rng.standard_normal(yp.shape).astype(np.float32); dx = np.empty((n, 26, 26, 32), np.float32)
dk, db = np.empty_like(kern), np.empty_like(b)
def uf():
    K.conv_forward(x, kern, y, b, R, 0., *geo); K.maxpool_forward(y.reshape(n, 26, 26, 32), yp, idx, (2, 2), (2, 2), (0, 0), 1)
def ff(): K.conv_pool_forward(x, kern, yp, b, R, 0., *geo, idx=ix)
def ub():
    K.maxpool_backward(idx, dyp, dx, (2, 2), (2, 2), (0, 0), 1); K.conv_backward_weights(x, dx.reshape(-1, 32), y, dk, db, R, 0., None, None, *geo)
def fb(): K.conv_pool_backward_weights(x, dyp, yp, ix, dk, db, R, None, *geo)
res = {k: [] for k in ("uf", "ff", "ub", "fb", "wuf", "wff", "wub", "wfb")}
# conv2: 128x13x13x32 -> 11x11x64 Winograd F4, pool 5x5
x2 = rng.standard_normal((n, 13, 13, 32)).astype(np.float32); k2 = rng.standard_normal((3, 3, 32, 64)).astype(np.float32) * .1
b2 = np.zeros(64, np.float32); su, sv, sm = K.wino_sizes(x2.shape, k2.shape, 4, (11, 11))
U, V, M, dU = (np.empty(s, np.float32) for s in (su, sv, sm, su))
y2 = np.empty((n, 11, 11, 64), np.float32); yp2 = np.empty((n, 5, 5, 64), np.float32); idx2 = np.empty(yp2.shape, np.int32)
ix2 = np.empty(yp2.shape, np.uint8); dyp2 = rng.standard_normal(yp2.shape).astype(np.float32)
dxp = np.empty((n, 10, 10, 64), np.float32); dfull = np.zeros((n, 11, 11, 64), np.float32); delta = np.empty_like(dfull)
dk2 = np.empty_like(k2); dx2 = np.empty_like(x2)
def wuf():
    K.wino_forward(x2, k2, b2, U, V, y2, 4, (0, 0), R, 0.); K.maxpool_forward(y2, yp2, idx2, (2, 2), (2, 2), (0, 0), 1)
def wff(): K.wino_pool_forward(x2, k2, b2, U, V, yp2, ix2, (11, 11), 4, (0, 0), R)
def wub():
    K.maxpool_backward(idx2, dyp2, dfull, (2, 2), (2, 2), (0, 0), 1)   # dx of the pool (11x11: last row/col zero)
    E.act_backward(R, 0., None, y2, dfull, delta, 1); E.colsum(delta.reshape(-1, 64), db2, 1)
    K.wino_backward(delta, U, V, M, dU, dk2, dx2, (13, 13), 4)
db2 = np.empty(64, np.float32)
def wfb():
    K.unpool2_colsum(yp2, ix2, dyp2, db2, (11, 11), R); K.wino_pool_backward(dyp2, yp2, ix2, U, V, M, dU, dk2, dx2, (13, 13), (11, 11), 4, act=R)
fns = dict(uf=uf, ff=ff, ub=ub, fb=fb, wuf=wuf, wff=wff, wub=wub, wfb=wfb)
for _ in range(5):
    for k, f in fns.items(): res[k].append(med(f, 5))
m = {k: np.median(v) for k, v in res.items()}
import os
print(nncore.get_simd_level(), "load %.1f" % os.getloadavg()[0], " ".join(f"{k} {v:.2f}" for k, v in m.items()))
