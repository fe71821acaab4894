"""Command line: ``python -m nncore demo`` trains an MLP on scikit-learn's digits.

    python -m nncore demo [--epochs N] [--batch-size B] [--seed S] [--threads T] [--verbose V]
    python -m nncore config
"""
import argparse
import sys
import time


def demo(epochs=20, batch_size=32, seed=0, threads=None, verbose=1):
    """Train a 64-128-64-10 MLP on the digits; print test accuracy and training samples/s, then the test
    accuracy of the model quantized to int8 (``model.quantize("int8")``)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import nncore
    from nncore.layers import Dense, Input
    from nncore.models import Sequential

    nncore.set_seed(seed)
    digits = load_digits()
    x = digits.data / 16.0                            # pixels 0..16 -> [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.25, random_state=seed,
                                                        stratify=digits.target)
    model = Sequential([Input(shape=(64,)), Dense(128, activation="relu"), Dense(64, activation="relu"),
                        Dense(10, activation="softmax")], name="digits_mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  n_threads=threads)
    if verbose:
        model.summary()
    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=verbose)
    seconds = time.perf_counter() - t0
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    rate = len(x_train) * epochs / seconds
    print(f"test accuracy: {accuracy:.4f}  (test loss {loss:.4f}, {len(x_test)} test digits)")
    print(f"training: {rate:,.0f} samples/s ({epochs} epochs of {len(x_train)} samples in {seconds:.2f} s, "
          f"batch {batch_size}, {nncore.get_num_threads() if threads is None else threads} threads)")
    model.quantize("int8")
    _, int8_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"int8 (model.quantize('int8')): test accuracy {int8_accuracy:.4f}")
    return {"accuracy": accuracy, "loss": loss, "samples_per_s": rate, "int8_accuracy": int8_accuracy}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nncore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    d = sub.add_parser("demo", help="train an MLP on scikit-learn's digits")
    d.add_argument("--epochs", type=int, default=20)
    d.add_argument("--batch-size", type=int, default=32)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, default=None)
    d.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    sub.add_parser("config", help="show what the compiled core was built with")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.epochs, args.batch_size, args.seed, args.threads, args.verbose)
    elif args.command == "config":
        import nncore
        nncore.show_config()
    else:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
