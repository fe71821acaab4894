"""Per-coordinate adaptive rates from squared gradients: Adagrad, RMSprop, Adadelta."""
from nncore._kernels import optim as _k
from nncore.optimizers.optimizer import Optimizer, _flag, _number


class Adagrad(Optimizer):
    """Adagrad: each coordinate's step shrinks with its accumulated squared gradient.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.001
    initial_accumulator_value : float >= 0, default=0.1
    epsilon : float >= 0, default=1e-7
    weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    a <- a + g^2 (a starts at initial_accumulator_value);
    w <- w - lr g / sqrt(a + eps).

    PyTorch's Adagrad starts a at 0 (its initial_accumulator_value default)
    and puts eps outside the root: w <- w - lr g / (sqrt(a) + eps) (eps 1e-10).

    References
    ----------
    Duchi, Hazan and Singer, "Adaptive Subgradient Methods for Online Learning
    and Stochastic Optimization", JMLR 2011.
    """

    _defaults_name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads)
        self.initial_accumulator_value = _number("initial_accumulator_value", initial_accumulator_value, lo=0)
        self.epsilon = _number("epsilon", epsilon, lo=0)

    def _slot_names(self):
        return ("accumulator",)

    def _slot_initial(self, name):
        return self.initial_accumulator_value

    def _rule(self, lr, t):
        # a <- a + g^2 ; w <- w - lr g / sqrt(a + eps)
        return _k.KINDS["adagrad"], 0, (lr, self.epsilon)

    def _hyper_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """RMSprop: divide the step by a running root mean square of the gradient.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.001
    rho : float in [0, 1], default=0.9
    momentum : float in [0, 1], default=0.0
    epsilon : float >= 0, default=1e-7
    centered : bool, default=False
        Divide by an estimate of the gradient's variance instead of its second moment.
    weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    v <- rho v + (1 - rho) g^2;
    centered: gbar <- rho gbar + (1 - rho) g, den = sqrt(v - gbar^2 + eps);
    otherwise den = sqrt(v + eps); d = lr g / den;
    momentum mu > 0: m <- mu m + d, w <- w - m; otherwise w <- w - d.

    PyTorch puts eps outside the root (den = sqrt(v) + eps, eps 1e-8), calls
    rho ``alpha`` (default 0.99) and applies lr after the momentum buffer
    (m <- mu m + g / den, w <- w - lr m).

    References
    ----------
    Tieleman and Hinton, Lecture 6.5, "Neural Networks for Machine Learning", 2012;
    Graves, "Generating Sequences With Recurrent Neural Networks", 2013 (centered).
    """

    _defaults_name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads)
        self.rho = _number("rho", rho, lo=0, hi=1)
        self.momentum = _number("momentum", momentum, lo=0, hi=1)
        self.epsilon = _number("epsilon", epsilon, lo=0)
        self.centered = _flag("centered", centered)

    def _slot_names(self):
        return ("velocity",) + (("average_gradient",) if self.centered else ()) + \
            (("momentum",) if self.momentum > 0 else ())

    def _rule(self, lr, t):
        # v <- rho v + (1-rho) g^2 ; d = lr g / sqrt(v [- gbar^2] + eps) ; m <- mu m + d ; w <- w - m
        flags = _k.CENTERED if self.centered else 0
        return _k.KINDS["rmsprop"], flags, (lr, self.rho, 1.0 - self.rho, self.epsilon, self.momentum)

    def _hyper_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


class Adadelta(Optimizer):
    """Adadelta: steps scaled by the ratio of running RMS of updates and of gradients.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.001
    rho : float in [0, 1], default=0.95
    epsilon : float >= 0, default=1e-7
    weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    Eg <- rho Eg + (1 - rho) g^2; d = -sqrt(Ed + eps) g / sqrt(Eg + eps);
    Ed <- rho Ed + (1 - rho) d^2; w <- w + lr d.

    PyTorch's rule is the same but its default lr is 1.0 (the paper's, with no
    learning rate) and eps 1e-6; Keras 3 (and nncore) default to lr 0.001.

    References
    ----------
    Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012.
    """

    _defaults_name = "adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads)
        self.rho = _number("rho", rho, lo=0, hi=1)
        self.epsilon = _number("epsilon", epsilon, lo=0)

    def _slot_names(self):
        return ("accumulated_grad", "accumulated_delta_var")

    def _rule(self, lr, t):
        # Eg <- rho Eg + (1-rho) g^2 ; d = -sqrt(Ed + eps) g / sqrt(Eg + eps) ; Ed <- ... ; w <- w + lr d
        return _k.KINDS["adadelta"], 0, (lr, self.rho, 1.0 - self.rho, self.epsilon)

    def _hyper_config(self):
        return {"rho": self.rho, "epsilon": self.epsilon}
