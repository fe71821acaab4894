"""FTRL-Proximal, with L1, L2 and L2-shrinkage regularization."""
from nncore._kernels import optim as _k
from nncore.optimizers.optimizer import Optimizer, _number


class Ftrl(Optimizer):
    """Follow The Regularized Leader (FTRL-Proximal), as in Keras 3.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.001
        Must be > 0 when a step is taken.
    learning_rate_power : float <= 0, default=-0.5
    initial_accumulator_value : float >= 0, default=0.1
    l1_regularization_strength : float >= 0, default=0.0
    l2_regularization_strength : float >= 0, default=0.0
    l2_shrinkage_regularization_strength : float >= 0, default=0.0
    beta : float >= 0, default=0.0
    weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    With p = learning_rate_power, l2s the shrinkage:
    gs = g + 2 l2s w; n' = n + g^2 (n starts at initial_accumulator_value);
    sigma = (n'^(-p) - n^(-p)) / lr; z <- z + gs - sigma w;
    q = n'^(-p) / lr + 2 (l2 + beta / (2 lr)); w <- (clip(z, -l1, l1) - z) / q; n <- n'.
    PyTorch has no FTRL optimizer.

    References
    ----------
    McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013.
    """

    _defaults_name = "ftrl"

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads)
        self.learning_rate_power = _number("learning_rate_power", learning_rate_power, hi=0)
        self.initial_accumulator_value = _number("initial_accumulator_value", initial_accumulator_value, lo=0)
        self.l1_regularization_strength = _number("l1_regularization_strength", l1_regularization_strength, lo=0)
        self.l2_regularization_strength = _number("l2_regularization_strength", l2_regularization_strength, lo=0)
        self.l2_shrinkage_regularization_strength = _number(
            "l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength, lo=0)
        self.beta = _number("beta", beta, lo=0)

    def _slot_names(self):
        return ("accumulator", "linear")

    def _slot_initial(self, name):
        return self.initial_accumulator_value if name == "accumulator" else 0.0

    def _rule(self, lr, t):
        if not lr > 0:
            raise ValueError(f"learning_rate: Ftrl needs a learning rate > 0, got {lr!r}")
        # q = n'^-p / lr + q2 with q2 = 2 (l2 + beta / (2 lr)), once per step in double
        q2 = 2.0 * (self.l2_regularization_strength + self.beta / (2.0 * lr))
        coef = (lr, self.learning_rate_power, self.l1_regularization_strength, q2,
                2.0 * self.l2_shrinkage_regularization_strength)
        return _k.KINDS["ftrl"], 0, coef

    def _hyper_config(self):
        return {"learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta}
