"""Adam and its family: Adam (amsgrad), AdamW, Adamax, Nadam."""
import math

from nncore._kernels import optim as _k
from nncore.optimizers.optimizer import Optimizer, _flag, _number


def _betas(beta_1, beta_2):
    return _number("beta_1", beta_1, lo=0, hi=1, hi_open=True), _number("beta_2", beta_2, lo=0, hi=1, hi_open=True)


class Adam(Optimizer):
    """Adam: momentum on the gradient and on its square, with bias correction.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.001
    beta_1 : float in [0, 1), default=0.9
    beta_2 : float in [0, 1), default=0.999
    epsilon : float >= 0, default=1e-7
    amsgrad : bool, default=False
        Divide by the running maximum of v (Reddi et al. 2018).
    weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    m <- m + (g - m)(1 - b1); v <- v + (g^2 - v)(1 - b2);
    a_t = lr sqrt(1 - b2^t) / (1 - b1^t); amsgrad: vhat <- max(vhat, v) replaces v;
    w <- w - a_t m / (sqrt(v) + eps).

    Epsilon is the paper's "epsilon hat" (Keras 3, sklearn): the bias
    correction is folded into a_t. PyTorch follows Algorithm 1 instead:
    w <- w - lr mhat / (sqrt(vhat) + eps) with mhat = m / (1 - b1^t),
    vhat = v / (1 - b2^t) and eps 1e-8, i.e. its eps is ours times
    sqrt(1 - b2^t); the two agree when eps is negligible.

    References
    ----------
    Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

    _defaults_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads)
        self.beta_1, self.beta_2 = _betas(beta_1, beta_2)
        self.epsilon = _number("epsilon", epsilon, lo=0)
        self.amsgrad = _flag("amsgrad", amsgrad)

    def _slot_names(self):
        return ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def _rule(self, lr, t):
        # a_t = lr sqrt(1 - b2^t) / (1 - b1^t), once per step in double
        a_t = lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        flags = _k.AMSGRAD if self.amsgrad else 0
        return _k.KINDS["adam"], flags, (a_t, 1.0 - self.beta_1, 1.0 - self.beta_2, self.epsilon)

    def _hyper_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (``weight_decay`` defaults to 0.004).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.001
    weight_decay : float >= 0, default=0.004
    beta_1, beta_2, epsilon, amsgrad
        As :class:`Adam`.
    clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    w <- w - lr wd w, then the Adam step (see :class:`Adam`).

    PyTorch's AdamW decays the same way (w <- w (1 - lr wd), default wd 0.01)
    and keeps its own epsilon placement (see :class:`Adam`).

    References
    ----------
    Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    _defaults_name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        if weight_decay is None:
            raise ValueError("weight_decay: AdamW needs a weight decay (a float >= 0), got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, name, n_threads)


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm in place of the second moment.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.001
    beta_1 : float in [0, 1), default=0.9
    beta_2 : float in [0, 1), default=0.999
    epsilon : float >= 0, default=1e-7
    weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    m <- m + (g - m)(1 - b1); u <- max(b2 u, |g|);
    w <- w - lr m / ((1 - b1^t)(u + eps)).

    PyTorch puts eps inside the max, u <- max(b2 u, |g| + eps), and divides by u.

    References
    ----------
    Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.
    """

    _defaults_name = "adamax"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads)
        self.beta_1, self.beta_2 = _betas(beta_1, beta_2)
        self.epsilon = _number("epsilon", epsilon, lo=0)

    def _slot_names(self):
        return ("m", "u")

    def _rule(self, lr, t):
        # m <- m + (g - m)(1-b1) ; u <- max(b2 u, |g|) ; w <- w - lr m / ((1 - b1^t)(u + eps))
        return _k.KINDS["adamax"], 0, (lr, 1.0 - self.beta_1, self.beta_2, 1.0 - self.beta_1 ** t, self.epsilon)

    def _hyper_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Nadam: Adam with Nesterov momentum and Dozat's momentum schedule.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.001
    beta_1 : float in [0, 1), default=0.9
    beta_2 : float in [0, 1), default=0.999
    epsilon : float >= 0, default=1e-7
    weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    mu_t = b1 (1 - 0.5 * 0.96^t), mu_next = b1 (1 - 0.5 * 0.96^(t+1));
    P <- P mu_t (P, the u_product, starts at 1 and is updated once per step);
    m <- m + (g - m)(1 - b1); v <- v + (g^2 - v)(1 - b2);
    mhat = mu_next m / (1 - P mu_next) + (1 - mu_t) g / (1 - P); vhat = v / (1 - b2^t);
    w <- w - lr mhat / (sqrt(vhat) + eps).

    PyTorch's NAdam uses mu_t = b1 (1 - 0.5 * 0.96^(0.004 t)) (its
    momentum_decay 0.004) and eps 1e-8.

    References
    ----------
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """

    _defaults_name = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads)
        self.beta_1, self.beta_2 = _betas(beta_1, beta_2)
        self.epsilon = _number("epsilon", epsilon, lo=0)
        self._u_product = 1.0

    def _slot_names(self):
        return ("m", "v")

    def _rule(self, lr, t):
        # mu_t, mu_next and the running product P, once per step in double
        mu_t = self.beta_1 * (1.0 - 0.5 * 0.96 ** t)
        mu_next = self.beta_1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        p_t = self._u_product * mu_t
        self._u_product = p_t
        c1 = mu_next / (1.0 - p_t * mu_next)
        c2 = (1.0 - mu_t) / (1.0 - p_t)
        c3 = 1.0 / (1.0 - self.beta_2 ** t)
        return _k.KINDS["nadam"], 0, (lr, 1.0 - self.beta_1, 1.0 - self.beta_2, self.epsilon, c1, c2, c3)

    def _extra_state(self):
        return {"u_product": self._u_product}

    def _set_extra_state(self, state):
        if "u_product" not in state:
            raise ValueError("state: Nadam needs 'u_product'")
        self._u_product = float(state["u_product"])

    def _hyper_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
