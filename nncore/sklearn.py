"""scikit-learn estimators around nncore models: :class:`NNClassifier` and :class:`NNRegressor`.

Two ways to say the network:

- ``MLPClassifier``-style parameters: ``hidden_layer_sizes``, ``activation``, ``alpha`` ... give
  ``Input -> Dense(h, activation) ... -> Dense(n_outputs, output activation)``;
- ``model=``: a function returning a ``Sequential`` (compiled or not), called at fit time with
  the keyword arguments it names among ``n_features_in``, ``n_outputs``, ``n_classes``,
  ``target_type`` and ``output_activation``; or a ``Sequential`` whose architecture (and compile
  settings, when it is compiled) is cloned with fresh weights, as Keras's ``clone_model`` does.

What fit does, per call::

    X, y   -> validate_data (float32 stays float32, anything else becomes float64: the model's dtype)
    y      -> targets for the loss (classes_ from the labels: any label type)
    w      -> w / mean(w)                      so that a batch's loss is sum_b(w l) / sum_b(w)
    alpha  -> L2(alpha / (2 * batch_size * mean(w))) on every kernel: sklearn's alpha/2 ||W||^2 per
              batch of sum_b(w) samples, and Keras's per-batch penalty
    model.fit(epochs, batch_size, shuffle, sample_weight=w, callbacks=[the stopping rule])

The stopping rule is MLPClassifier's: an epoch whose training loss (or, with early_stopping, whose
validation score) does not beat the best so far by ``tol`` counts; after more than
``n_iter_no_change`` such epochs in a row training stops (with early_stopping the best weights
are put back). Everything random (the initial weights, the shuffling, Dropout) draws from one
generator made from ``random_state``, so a fit is reproducible and independent of the global
``nncore.set_seed`` state and of other threads.

Pickling a fitted estimator stores its model in nncore's own model format
(``nncore.saving.model_to_bytes``) inside ``__getstate__``.
"""
import inspect
import warnings

import numpy as np

try:
    from sklearn.base import (BaseEstimator, ClassifierMixin, ClassNamePrefixFeaturesOutMixin,
                              RegressorMixin, TransformerMixin)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                          validate_data)
except ImportError as exc:  # pragma: no cover - exercised by the extras test in a subprocess
    raise ImportError("nncore.sklearn needs scikit-learn >= 1.6: pip install 'nncore[sklearn]'") from exc

from nncore import _random
from nncore import optimizers as _optimizers
from nncore import saving
from nncore._config import using_floatx
from nncore.callbacks import Callback
from nncore.layers import Dense, Input
from nncore.models import Sequential
from nncore.regularizers import L2

__all__ = ["NNClassifier", "NNRegressor"]

_META = ("n_features_in", "n_outputs", "n_classes", "target_type", "output_activation")


class _StopRule(Callback):
    """MLPClassifier's n_iter_no_change / tol rule, recording the estimator's curves.

    Per epoch: the training loss goes to ``loss_curve_``; with a validation set its score goes
    to ``validation_scores_`` (and to the logs as ``val_score``). ``value`` = the loss (lower is
    better) or the score (higher is better); an epoch with value not better than best by tol
    counts, one that is resets the count; more than n_iter_no_change counted epochs in a row
    stop training. The best weights are kept to put back at the end when scoring.
    """

    def __init__(self, est, score, tol, n_iter_no_change):
        self.est, self.score, self.tol, self.patience = est, score, tol, n_iter_no_change
        self.count, self.best_weights, self.stopped = 0, None, False

    def on_epoch_end(self, epoch, logs=None):
        est = self.est
        est.n_iter_ += 1
        est.loss_curve_.append(float(logs["loss"]))
        if self.score is not None:
            s = float(self.score())
            logs["val_score"] = s
            est.validation_scores_.append(s)
            improved = self.tol is not None and s >= est.best_validation_score_ + self.tol
            if s > est.best_validation_score_:
                est.best_validation_score_ = s
                self.best_weights = self.model.get_weights()
        else:
            loss = est.loss_curve_[-1]
            improved = self.tol is not None and loss <= est.best_loss_ - self.tol
            est.best_loss_ = min(est.best_loss_, loss)
        self.count = 0 if improved else self.count + 1
        if self.tol is not None and self.count > self.patience:
            self.stopped = self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_float(value, name, low, high=np.inf, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (low < value if low_open else low <= value) or not value < high:
        interval = f"{'(' if low_open else '['}{low}, {high})"
        raise ValueError(f"{name} must be a float in {interval}, got {value!r}")
    return float(value)


class _NNBase(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """What NNClassifier and NNRegressor share: the parameters, the model, the training loop."""

    def __init__(self, hidden_layer_sizes=(100,), *, model=None, activation="relu", optimizer="adam",
                 learning_rate=None, alpha=1e-4, loss=None, batch_size="auto", epochs=200, shuffle=True,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 warm_start=False, random_state=None, verbose=0, n_threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.model = model
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.loss = loss
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads

    # ------------------------------------------------------------------ sklearn protocol
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def __getstate__(self):
        state = dict(super().__getstate__())   # a copy: object.__getstate__ may give __dict__ itself
        if "model_" in state:     # the fitted model as nncore's model file, in memory
            state["model_"] = saving.model_to_bytes(state["model_"], allow_nonfinite=True)
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), (bytes, bytearray)):
            state = dict(state, model_=saving.model_from_bytes(state["model_"]))
        super().__setstate__(state)
        if hasattr(self, "model_"):
            self._apply_threads(self.model_)

    # ------------------------------------------------------------------ parameters
    def _checked_params(self):
        """The parameters, validated (sklearn's rule: at fit time, never in __init__)."""
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, (int, np.integer)) else list(sizes)
        for h in sizes:
            _check_int(h, "hidden_layer_sizes entries", 1)
        if self.batch_size != "auto":
            _check_int(self.batch_size, "batch_size ('auto' or an int)", 1)
        _check_int(self.epochs, "epochs", 1)
        _check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        _check_float(self.alpha, "alpha", 0.0)
        if self.tol is not None:
            _check_float(self.tol, "tol (or None)", 0.0)
        if self.learning_rate is not None:
            _check_float(self.learning_rate, "learning_rate (or None)", 0.0, low_open=True)
        if self.early_stopping:
            _check_float(self.validation_fraction, "validation_fraction", 0.0, 1.0, low_open=True)
        if self.verbose not in (0, 1, 2, True, False):
            raise ValueError(f"verbose must be 0, 1 or 2, got {self.verbose!r}")
        if self.model is not None and not (isinstance(self.model, Sequential) or callable(self.model)):
            raise TypeError(f"model must be None, a Sequential or a function returning one, got "
                            f"{type(self.model).__name__}")
        return [int(h) for h in sizes]

    def _make_optimizer(self):
        opt = self.optimizer
        if isinstance(opt, _optimizers.Optimizer):   # a copy: fitting must not change a parameter
            opt = _optimizers.serialize(opt)
        opt = _optimizers.get(opt)
        if self.learning_rate is not None:
            opt.learning_rate = float(self.learning_rate)
        return opt

    def _apply_threads(self, model):
        # the thread count lives with the estimator, not in the model file (see nncore.models)
        if self.n_threads is not None:
            model._n_threads_req = self.n_threads

    # ------------------------------------------------------------------ the model
    def _build_model(self, n_features, n_outputs, meta):
        """A new compiled Sequential for inputs (n, n_features) and n_outputs output units."""
        sizes = self._checked_params()
        if self.model is None:
            reg = L2(0.0) if self.alpha else None     # its factor is set per fit (see _penalty)
            layers = [Input(shape=(n_features,))]
            layers += [Dense(h, activation=self.activation, kernel_regularizer=reg) for h in sizes]
            layers.append(Dense(n_outputs, activation=meta["output_activation"], kernel_regularizer=reg))
            model = Sequential(layers)
        elif isinstance(self.model, Sequential):
            model = Sequential.from_config(self.model.get_config())
            if self.model._compile_config:
                saving._compile_from_config(model, self.model._compile_config)
        else:
            model = self.model(**self._meta_kwargs(meta))
            if not isinstance(model, Sequential):
                raise TypeError(f"model: the function must return an nncore Sequential, got "
                                f"{type(model).__name__}")
        if not model.built:
            model.build((None, n_features))
        if tuple(model.input_shape[1:]) != (n_features,):
            raise ValueError(f"model: its input shape is {tuple(model.input_shape)}, but X has "
                             f"{n_features} features")
        if tuple(model.output_shape[1:]) not in [(k,) for k in meta["allowed_outputs"]]:
            raise ValueError(f"model: its output shape is {tuple(model.output_shape)}; a "
                             f"{meta['target_type']} target needs (None, "
                             f"{' or '.join(map(str, meta['allowed_outputs']))}) "
                             f"({meta['output_activation']} outputs)")
        if model.optimizer is None or model.loss is None:
            loss = self.loss if self.loss is not None else meta["loss"]
            model.compile(optimizer=self._make_optimizer(), loss=loss, n_threads=self.n_threads)
        self._apply_threads(model)
        return model

    def _meta_kwargs(self, meta):
        params = inspect.signature(self.model).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return {k: meta[k] for k in _META}
        for name, p in params.items():
            if name not in _META and p.default is p.empty and p.kind is not p.VAR_POSITIONAL:
                raise TypeError(f"model: the function's argument {name!r} is not one the estimator "
                                f"passes ({', '.join(_META)}); give it a default")
        return {k: meta[k] for k in _META if k in params}

    def _penalty(self, batch_size, w_mean):
        """alpha/2 ||W||^2 per batch of batch_size * mean(w) samples (MLPClassifier's alpha)."""
        if self.model is None:
            for layer in self.model_.layers:
                if isinstance(layer.kernel_regularizer, L2):
                    layer.kernel_regularizer.l2 = 0.5 * float(self.alpha) / (batch_size * w_mean)

    # ------------------------------------------------------------------ training
    def _fit(self, X, y, sample_weight, incremental, classes=None):
        fitted = hasattr(self, "model_")
        first = not fitted or (not incremental and not self.warm_start)
        self._checked_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True (as MLPClassifier)")
        dtype = (np.float64, np.float32) if first else self.model_.weights[0].dtype
        X, y = validate_data(self, X, y, reset=first, dtype=dtype, multi_output=True,
                             y_numeric=self._numeric_y)
        y, meta = self._targets(y, first, classes)
        w = None
        if sample_weight is not None:
            w = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
            if not w.sum() > 0:
                raise ValueError("Sample weights must contain at least one non-zero number.")
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        with _random.using_rng(np.random.default_rng(seed)), using_floatx(X.dtype.name):
            if first:
                self._init_model(X.shape[1], meta)
            y_fit = self._encode(y)
            score = None
            if self.early_stopping:
                stratify = y if meta["target_type"] in ("binary", "multiclass") else None
                arrays = [X, y, y_fit] + ([w] if w is not None else [])
                parts = train_test_split(*arrays, test_size=self.validation_fraction, random_state=seed,
                                         stratify=stratify)
                X, X_val, y_val, y_fit = parts[0], parts[1], parts[3], parts[4]
                w, w_val = (parts[6], parts[7]) if w is not None else (None, None)
                score = lambda: self.score(X_val, y_val, sample_weight=w_val)  # noqa: E731
                self.best_validation_score_ = -np.inf
            elif self.best_loss_ is None:
                self.best_loss_ = np.inf
            n = X.shape[0]
            batch_size = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
            w_mean = 1.0
            if w is not None:
                w_mean = float(w.mean())
                w = w / w_mean                   # mean 1: a batch's loss is sum_b(w l) / sum_b(w)
            self._penalty(batch_size, w_mean)
            rule = _StopRule(self, score, None if incremental else self.tol, self.n_iter_no_change)
            history = self.model_.fit(X, y_fit, batch_size=batch_size, epochs=1 if incremental else self.epochs,
                                      verbose=int(self.verbose), callbacks=[rule], shuffle=bool(self.shuffle),
                                      sample_weight=w)
        for k, v in history.history.items():
            self.history_.setdefault(k, []).extend(v)
        self.t_ += n * len(history.epoch)
        self.loss_ = self.loss_curve_[-1]
        if self.early_stopping:
            self.best_loss_ = None
        if not incremental and not rule.stopped and self.tol is not None:
            warnings.warn(f"{type(self).__name__}: the maximum number of epochs ({self.epochs}) was reached "
                          "and the optimization has not converged yet.", ConvergenceWarning)
        return self

    def _init_model(self, n_features, meta):
        """A new model and the fitted attributes that restart with it."""
        self.model_ = self._build_model(n_features, meta["n_outputs"], meta)
        self.n_outputs_ = int(self.model_.output_shape[-1])
        self._n_features_out = int(np.prod(self.model_.layers[-1].input_shape[1:]))
        self.out_activation_ = meta["output_activation"]
        self.n_iter_, self.t_ = 0, 0
        self.loss_curve_, self.history_ = [], {}
        self.best_loss_ = np.inf
        self.validation_scores_, self.best_validation_score_ = [], -np.inf

    def fit(self, X, y, sample_weight=None):
        """Train the network on (X, y) for up to ``epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; a weight of 2 counts as the sample twice.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    # ------------------------------------------------------------------ inference
    def _forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.model_.predict(X, batch_size=1024, verbose=0)

    def transform(self, X):
        """The last hidden layer's activations: the features the output layer sees.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features_out)
            In the model's dtype (float32 for float32 training data, else float64); a pandas
            DataFrame after ``set_output(transform="pandas")``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        model = self.model_
        with model._lock:     # the layers' work buffers belong to one call at a time
            x = model._prepare_inputs(X)[0]
            model._setup()
            out = np.empty((len(x), self._n_features_out), x.dtype)
            for start in range(0, len(x), 1024):
                h = x[start:start + 1024]
                for layer in model.layers[:-1]:
                    h = layer.forward(h, False)
                out[start:start + len(h)] = h.reshape(len(h), -1)
        return out

    def fit_transform(self, X, y, sample_weight=None):
        """``fit(X, y, sample_weight)`` then ``transform(X)``."""
        return self.fit(X, y, sample_weight=sample_weight).transform(X)


class NNClassifier(ClassifierMixin, _NNBase):
    """A neural-network classifier trained by nncore, with scikit-learn's estimator API.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Units of each hidden Dense layer (ignored when ``model`` is given).
    model : Sequential or callable, default=None
        The network instead of the MLP parameters: a Sequential to clone (architecture and
        compile settings, fresh weights), or a function returning a Sequential, called at fit time
        with the keyword arguments it names among ``n_features_in``, ``n_outputs`` (output units:
        1 for a binary target, the number of classes or labels otherwise), ``n_classes``,
        ``target_type`` and ``output_activation`` ("sigmoid" or "softmax"). An uncompiled model is
        compiled with ``optimizer``, ``learning_rate`` and ``loss``. Its output must be
        probabilities.
    activation : str, default="relu"
        Activation of the hidden layers (any nncore activation name).
    optimizer : str, dict or Optimizer, default="adam"
        Any nncore optimizer; an instance is copied, never changed.
    learning_rate : float, default=None
        Overrides the optimizer's learning rate (None: its own; 1e-3 for Adam).
    alpha : float, default=1e-4
        L2 penalty on the kernels, as MLPClassifier's: alpha/2 ||W||^2 per batch of samples.
    loss : str or Loss, default=None
        None: binary cross-entropy for binary and multilabel targets, sparse categorical
        cross-entropy for multiclass ones.
    batch_size : int or "auto", default="auto"
        "auto" is min(200, n_samples); larger values are clipped to n_samples.
    epochs : int, default=200
        The most passes over the data per fit (MLPClassifier's max_iter).
    shuffle : bool, default=True
        Reshuffle the samples every epoch.
    early_stopping : bool, default=False
        Set ``validation_fraction`` of the data aside (stratified) and stop when its accuracy
        stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    tol : float or None, default=1e-4
        Training stops after more than ``n_iter_no_change`` epochs in a row that do not improve
        the loss (or the validation score) by at least tol; None runs every epoch.
    warm_start : bool, default=False
        Continue from the fitted weights (and optimizer state) on the next fit.
    random_state : int, RandomState or None, default=None
        Seeds the weights, the shuffling and Dropout: an int gives the same fit every time.
    verbose : {0, 1, 2}, default=0
        nncore's progress display (Keras's: 1 a bar, 2 a line per epoch).
    n_threads : int, default=None
        Threads for the kernels (None: ``nncore.get_num_threads()``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (any type sklearn accepts); for a multilabel target, 0..n_labels-1.
    model_ : Sequential
        The trained network.
    n_outputs_ : int
        Output units.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X had string column names.
    loss_ : float
        The last epoch's training loss (nncore's: mean per-sample loss plus the penalty).
    loss_curve_ : list of float
        Training loss per epoch, over all fits since the weights were initialized.
    best_loss_ : float or None
        The lowest training loss (None with early_stopping).
    validation_scores_ : list of float
        Validation accuracy per epoch (early_stopping only).
    best_validation_score_ : float
    history_ : dict of list
        The model's History over the same epochs (``nncore.plot.history(est.history_)``).
    n_iter_ : int
        Epochs run.
    t_ : int
        Training samples seen.
    out_activation_ : str

    Notes
    -----
    Binary targets use one sigmoid output, multiclass ones a softmax over the classes, multilabel
    indicator matrices one sigmoid per label; a multiclass multi-output target is refused (as by
    MLPClassifier). ``transform`` gives the last hidden layer's activations, so the estimator also
    serves as a feature extractor (``set_output(transform="pandas")`` applies to it).
    """

    _numeric_y = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _targets(self, y, first, classes):
        """Set classes_ (first fit); return y (a column made 1-D) and the facts the model is built from."""
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        target_type = type_of_target(y, input_name="y")
        if target_type == "multiclass-multioutput":
            raise ValueError(f"{type(self).__name__} does not support multiclass multi-output "
                             "targets (each column its own classes); multilabel targets must be "
                             "0/1 indicator matrices")
        if not first:
            seen = getattr(self, "_target_type", None)
            if (seen == "multilabel-indicator") != (target_type == "multilabel-indicator"):
                raise ValueError(f"y is {target_type}, but the model was fitted on a {seen} target")
            if target_type != "multilabel-indicator":
                new = np.setdiff1d(unique_labels(y), self.classes_)
                if new.size:
                    raise ValueError(f"y contains labels {list(new)} that are not among classes_ "
                                     f"{list(self.classes_)} of the first fit")
            elif y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {y.shape[1]} labels, the model was fitted on "
                                 f"{len(self.classes_)}")
            return y, {"n_outputs": self.n_outputs_, "target_type": self._target_type}
        if target_type == "multilabel-indicator":
            self.classes_ = np.arange(y.shape[1])
            self._label_dtype = y.dtype
            n_outputs, allowed, act = y.shape[1], [y.shape[1]], "sigmoid"
        else:
            if classes is not None:
                labels = np.unique(np.asarray(classes))
                new = np.setdiff1d(unique_labels(y), labels)
                if new.size:
                    raise ValueError(f"y contains labels {list(new)} that are not in classes "
                                     f"{list(labels)}")
            else:
                labels = unique_labels(y)
            if len(labels) < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; got 1 "
                                 f"class ({labels[0]!r})")
            self.classes_ = labels
            k = len(labels)
            target_type = "binary" if k == 2 else "multiclass"
            n_outputs, allowed, act = (1, [1, 2], "sigmoid") if k == 2 else (k, [k], "softmax")
        self._target_type = target_type
        return y, {"n_outputs": n_outputs, "allowed_outputs": allowed, "n_features_in": self.n_features_in_,
                "n_classes": len(self.classes_), "target_type": target_type, "output_activation": act,
                "loss": "sparse_categorical_crossentropy" if act == "softmax" else "binary_crossentropy"}

    def _encode(self, y):
        """The targets in the form the model's loss takes: 0/1 for one output unit, else the class
        indices for a sparse loss or one-hot rows; a multilabel indicator matrix as floats."""
        if self._target_type == "multilabel-indicator":
            return np.asarray(y, dtype=np.float64)
        labels = np.searchsorted(self.classes_, y)
        n_out = self.model_.output_shape[-1]
        if n_out == 1:
            return labels.astype(np.float64)
        if getattr(self.model_.loss, "sparse", False):
            return labels
        return np.eye(n_out)[labels]

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole problem: required on the first call (unless y is a
            multilabel indicator matrix), ignored afterwards.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        if not hasattr(self, "model_") and classes is None and \
                type_of_target(y, input_name="y") != "multilabel-indicator":
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            For a binary target the columns are P(classes_[0]), P(classes_[1]); for a multilabel
            target, each label's probability.
        """
        p = self._forward(X)
        if p.shape[1] == 1:
            return np.hstack([1.0 - p, p])
        return p

    def predict_log_proba(self, X):
        """The logarithm of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample (each label over 0.5 for a multilabel target).

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        p = self.predict_proba(X)
        if self._target_type == "multilabel-indicator":
            return (p > 0.5).astype(self._label_dtype)
        return self.classes_[np.argmax(p, axis=1)]


class NNRegressor(RegressorMixin, _NNBase):
    """A neural-network regressor trained by nncore, with scikit-learn's estimator API.

    Parameters
    ----------
    hidden_layer_sizes, activation, optimizer, learning_rate, alpha, batch_size, epochs, shuffle,
    early_stopping, validation_fraction, n_iter_no_change, tol, warm_start, random_state, verbose,
    n_threads
        As in :class:`NNClassifier` (early stopping scores the validation part with R^2).
    model : Sequential or callable, default=None
        As in :class:`NNClassifier`; ``n_outputs`` is the number of target columns,
        ``output_activation`` "linear".
    loss : str or Loss, default=None
        None: mean squared error.

    Attributes
    ----------
    model_, n_outputs_, n_features_in_, feature_names_in_, loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_, history_, n_iter_, t_, out_activation_
        As in :class:`NNClassifier`.

    Notes
    -----
    A 1-D target gives 1-D predictions, a 2-D one (n_samples, n_outputs) 2-D predictions (one
    linear output unit per column).
    """

    _numeric_y = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y, first, classes):
        if not first:
            k = 1 if y.ndim == 1 else y.shape[1]
            if k != self.n_outputs_:
                raise ValueError(f"y has {k} columns, the model was fitted on {self.n_outputs_}")
            return y, {"n_outputs": self.n_outputs_}
        self._y_ndim = y.ndim
        k = 1 if y.ndim == 1 else y.shape[1]
        return y, {"n_outputs": k, "allowed_outputs": [k], "n_features_in": self.n_features_in_,
                "n_classes": None, "target_type": "continuous" if y.ndim == 1 else "continuous-multioutput",
                "output_activation": "linear", "loss": "mean_squared_error"}

    def _encode(self, y):
        return np.asarray(y, dtype=np.float64)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        y = self._forward(X)
        return y[:, 0] if self._y_ndim == 1 else y
