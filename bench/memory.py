"""Peak resident memory of one peer during ``fit``, in a process of its own.

``python -m bench.memory PEER WORKLOAD THREADS [MAX_SAMPLES]`` prints one JSON
line. Only that peer's library is imported, so the numbers compare what each
library costs a user. The peak is read from the kernel (VmHWM) after resetting
it just before fit (``/proc/self/clear_refs``), so the temporaries made while
generating the data do not count; where the reset is unavailable a sampling
thread reads RSS every millisecond instead.
"""
import json
import sys
import threading
import time


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _rss_mb():
    try:
        return _status_kb("VmRSS") / 1024.0
    except (OSError, KeyError):
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmHWM") <= _status_kb("VmRSS") + 4
    except (OSError, KeyError):
        return False


class _Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = _rss_mb()
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.001)


def measure(peer_name, workload, threads, max_samples=None, epochs=2):
    """{'peak_rss_mb', 'rss_before_fit_mb', 'fit_increment_mb', 'import_rss_mb', ...} for one peer."""
    from bench.peers import get_peer_class
    from bench.workloads import get_workload, make_data

    rss_start = _rss_mb()
    cls = get_peer_class(peer_name)
    ok, why = cls.available()
    if not ok:
        return {"peer": peer_name, "workload": workload, "error": why}
    wl = get_workload(workload, max_samples)
    ok, why = cls.supports(wl)
    if not ok:
        return {"peer": peer_name, "workload": workload, "error": why}
    rss_import = _rss_mb()
    x, y = make_data(wl)
    peer = cls(wl, x, y)
    peer.set_threads(threads)
    rss_before = _rss_mb()
    exact = _reset_peak()
    sampler = None if exact else _Sampler()
    if sampler:
        sampler.start()
    t0 = time.perf_counter()
    peer.run(epochs)  # a warm-up epoch, then one more: the steady state is in the peak
    seconds = time.perf_counter() - t0
    if sampler:
        sampler.stop.set()
        sampler.join()
        peak = sampler.peak
    else:
        peak = _status_kb("VmHWM") / 1024.0
    return {"peer": peer_name, "workload": wl.name, "threads": threads, "samples": wl.samples,
            "epochs": epochs, "seconds": seconds, "python_rss_mb": rss_start, "import_rss_mb": rss_import,
            "rss_before_fit_mb": rss_before, "peak_rss_mb": peak, "fit_increment_mb": peak - rss_before,
            "data_mb": (x.nbytes + y.nbytes) / 2**20, "method": "VmHWM reset" if exact else "RSS sampling 1 ms"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (3, 4):
        print("usage: python -m bench.memory PEER WORKLOAD THREADS [MAX_SAMPLES]", file=sys.stderr)
        return 2
    max_samples = int(argv[3]) if len(argv) == 4 and argv[3] != "None" else None
    print(json.dumps(measure(argv[0], argv[1], int(argv[2]), max_samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
