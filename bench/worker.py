"""A peer server in a subprocess, for the runs whose environment must differ.

The parent starts ``python -m bench.worker`` with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE removed (OpenBLAS reads them once, when it loads) and sends one
JSON request per line on stdin; each answer is one JSON line on stdout. The
worker times its own runs, so the pipe costs nothing in the figures, and the
parent interleaves these runs with its in-process ones.

Requests: {"op": "setup", "id", "peer", "workload", "samples", "threads"},
{"op": "run", "id", "k"} -> {"seconds", "loss"}, {"op": "close", "id"},
{"op": "info"} -> versions and BLAS libraries, {"op": "quit"}.
"""
import gc
import json
import os
import sys
import time
import traceback


def _info():
    import numpy

    out = {"numpy": numpy.__version__, "env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}}
    try:
        import sklearn

        out["sklearn"] = sklearn.__version__
        import sklearn.neural_network  # noqa: F401  (loads scipy's BLAS too)
    except ImportError:
        pass
    try:
        import threadpoolctl

        out["threadpool_info"] = threadpoolctl.threadpool_info()
    except ImportError:
        pass
    return out


def serve(inp, out):
    from bench.peers import get_peer_class
    from bench.workloads import get_workload, make_data

    peers = {}
    for line in inp:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "quit":
                reply = {"ok": True}
            elif op == "info":
                reply = {"ok": True, "info": _info()}
            elif op == "setup":
                wl = get_workload(req["workload"], req.get("samples"))
                cls = get_peer_class(req["peer"])
                ok, why = cls.available()
                if not ok:
                    raise RuntimeError(why)
                gc.collect()
                gc.freeze()  # the library's objects: later collections skip them
                x, y = make_data(wl)
                peer = cls(wl, x, y)
                peer.set_threads(req["threads"])
                peers[req["id"]] = peer
                reply = {"ok": True}
            elif op == "run":
                peer = peers[req["id"]]
                peer.set_threads(req["threads"])
                gc.collect()
                t0 = time.perf_counter()
                peer.run(int(req["k"]))
                reply = {"ok": True, "seconds": time.perf_counter() - t0, "loss": peer.last_loss}
            elif op == "close":
                peers.pop(req["id"], None)
                gc.collect()
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # report, keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if op == "quit":
            break


def main():
    proto = sys.stdout
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the protocol
    serve(sys.stdin, proto)
    return 0


if __name__ == "__main__":
    sys.exit(main())
