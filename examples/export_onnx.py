"""Train a small CNN on scikit-learn's 8 x 8 digits, export it to ONNX and serve it with ONNX Runtime.

The exported file holds the network and its weights; ONNX Runtime (or any ONNX runtime) runs it
without nncore. Its input is "input" of shape (batch, 8, 8, 1), float32, any batch size; its output
"output" holds the class probabilities, equal to nncore's predict to float32 rounding.

    pip install -e ".[onnx,examples]"
    python examples/export_onnx.py [path.onnx]
"""
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nncore
from nncore import layers as L


def main(path=None, epochs=15, verbose=0):
    nncore.set_seed(0)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8, 1)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

    model = nncore.Sequential([
        L.Input(shape=(8, 8, 1)),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dropout(0.2),
        L.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=epochs, batch_size=32, verbose=verbose)

    path = path or os.path.join(tempfile.mkdtemp(), "digits_cnn.onnx")
    model.export(path, format="onnx", verbose=bool(verbose))     # Keras 3's spelling; or nncore.onnx.export

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = X_test.astype(np.float32)
    p_ort = sess.run(None, {"input": x})[0]
    p_nncore = model.predict(x, verbose=0)
    accuracy = float(np.mean(p_ort.argmax(axis=1) == y_test))
    diff = float(np.max(np.abs(p_ort - p_nncore)))
    print(f"ONNX Runtime: test accuracy {accuracy:.4f}; largest difference from nncore's predict {diff:.1e}; "
          f"file {path} ({os.path.getsize(path) / 1024:.0f} KiB)")
    return {"accuracy": accuracy, "max_diff": diff, "path": path}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None, verbose=2)
