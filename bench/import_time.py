"""How long `import nncore` takes, against `import numpy` (which it needs) and an empty interpreter.

Each case runs in a fresh interpreter, the cases interleaved, `repeats` rounds; it prints the
median wall time of each, nncore's own share (nncore - numpy), the slowest of nncore's modules
by `python -X importtime` (cumulative microseconds) and the modules outside the standard library,
NumPy and nncore that the import added (none of the optional extras should be there).

    python bench/import_time.py [--repeats 15]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import CHILD_CWD, child_env  # noqa: E402

CASES = {"python": "pass", "numpy": "import numpy", "nncore": "import nncore"}
# what `import nncore` adds to sys.modules beyond the standard library, NumPy, nncore itself and
# Cython's runtime modules (the interpreter's start-up, e.g. site's .pth hooks, is left out)
FOREIGN = ("import sys; before = set(sys.modules); import nncore; "
           "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names) "
           "- {'numpy', 'nncore'} - {m for m in sys.modules if m.startswith(('_cython', 'cython_runtime'))}))")


def wall(code, env):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=CHILD_CWD, env=env, check=True)
    return time.perf_counter() - t


def slowest_modules(env, top):
    """nncore's modules by cumulative import time (us), from -X importtime of one fresh import."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import nncore"], cwd=CHILD_CWD, env=env,
                         capture_output=True, text=True, check=True).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = (p.strip() for p in line[len("import time:"):].split("|"))
            rows.append((int(cumulative), name))
    return sorted((r for r in rows if r[1].startswith("nncore") or r[1] == "numpy"), reverse=True)[:top]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    env = child_env(dict(os.environ))
    wall("import nncore", env)  # warm the file cache
    times = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, code in CASES.items():
            times[name].append(wall(code, env))
    med = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.repeats} interleaved fresh interpreters; median ms:")
    for name in CASES:
        print(f"  {CASES[name]:15s} {med[name]:7.1f}")
    print(f"  nncore's own share (nncore - numpy): {med['nncore'] - med['numpy']:.1f} ms")
    print("slowest modules (cumulative us, one -X importtime run):")
    for cumulative, name in slowest_modules(env, 8):
        print(f"  {cumulative:8d}  {name}")
    foreign = subprocess.run([sys.executable, "-c", FOREIGN], cwd=CHILD_CWD, env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
    print(f"modules outside the standard library, numpy and nncore: {foreign}")


if __name__ == "__main__":
    main()
