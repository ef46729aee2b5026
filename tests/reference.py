"""NumPy references for the engine: Keras 3's formulas written out plainly, in float64 unless a
test needs Keras's float32 arithmetic."""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-7
SELU_ALPHA, SELU_SCALE = 1.67326324, 1.05070098
_erf = np.vectorize(math.erf)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "softmax": softmax,
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "selu": lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(z)),
    "gelu": lambda z: 0.5 * z * (1 + _erf(z / np.sqrt(2))),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.2 * z),
    "silu": lambda z: z * sigmoid(z),
}


def activation_grad(name, z, da):
    """∂(Σ da·f(z))/∂z, written per activation."""
    s = sigmoid(z)
    derivative = {
        "linear": np.ones_like(z),
        "relu": (z > 0).astype(float),
        "sigmoid": s * (1 - s),
        "tanh": 1 - np.tanh(z) ** 2,
        "elu": np.where(z > 0, 1, np.exp(z)),
        "selu": SELU_SCALE * np.where(z > 0, 1, SELU_ALPHA * np.exp(z)),
        "gelu": 0.5 * (1 + _erf(z / np.sqrt(2))) + z * np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi),
        "softplus": s,
        "leaky_relu": np.where(z > 0, 1, 0.2),
        "silu": s * (1 + z * (1 - s)),
    }
    if name == "softmax":
        a = softmax(z)
        return a * (da - (da * a).sum(axis=-1, keepdims=True))
    return da * derivative[name]


def loss_per_row(kind, y, p, from_logits=False, label_smoothing=0.0):
    """Keras's per-row loss values (rows are the last axis)."""
    if kind == "mean_squared_error":
        return ((y - p) ** 2).mean(axis=-1)
    if kind == "mean_absolute_error":
        return np.abs(y - p).mean(axis=-1)
    if kind == "binary_crossentropy":
        y = y * (1 - label_smoothing) + 0.5 * label_smoothing
        if from_logits:
            return (-(y * np.log(sigmoid(p)) + (1 - y) * np.log(sigmoid(-p)))).mean(axis=-1)
        q = np.clip(p, EPSILON, 1 - EPSILON)
        return (-(y * np.log(q) + (1 - y) * np.log(1 - q))).mean(axis=-1)
    if kind == "sparse_categorical_crossentropy":
        y = np.eye(p.shape[-1])[y.astype(int).reshape(p.shape[:-1])]
        kind = "categorical_crossentropy"
    if kind == "categorical_crossentropy":
        y = y * (1 - label_smoothing) + label_smoothing / p.shape[-1]
        if from_logits:
            return -(y * np.log(softmax(p))).sum(axis=-1)
        q = np.clip(p / p.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
        return -(y * np.log(q)).sum(axis=-1)
    raise ValueError(kind)


def numeric_gradient(f, x, h=1e-6):
    """Central differences of the scalar `f` at `x` (float64)."""
    grad = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        up, down = x.astype(np.float64), x.astype(np.float64)
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


def optimizer_trajectory(kind, weights, grads, **cfg):
    """Keras 3's update equations in float32, one step per row of `grads`."""
    f32 = np.float32
    w = weights.astype(f32).copy()
    m, v, v_hat = (np.zeros_like(w) for _ in range(3))
    acc = np.full_like(w, cfg.get("initial_accumulator_value", 0.1))
    out = []
    for t, g in enumerate(grads.astype(f32), start=1):
        lr = f32(cfg["learning_rate"])
        if kind == "sgd":
            mu = f32(cfg.get("momentum", 0.0))
            if mu == 0:
                w = w - g * lr
            else:
                m = m * mu - g * lr
                w = w + (m * mu - g * lr if cfg.get("nesterov") else m)
        elif kind == "adam":
            b1, b2 = f32(cfg.get("beta_1", 0.9)), f32(cfg.get("beta_2", 0.999))
            alpha = lr * np.sqrt(f32(1) - b2 ** f32(t)) / (f32(1) - b1 ** f32(t))
            m = m + (g - m) * f32(1 - cfg.get("beta_1", 0.9))
            v = v + (g * g - v) * f32(1 - cfg.get("beta_2", 0.999))
            if cfg.get("amsgrad"):
                v_hat = np.maximum(v_hat, v)
                denom = np.sqrt(v_hat) + f32(cfg.get("epsilon", 1e-7))
            else:
                denom = np.sqrt(v) + f32(cfg.get("epsilon", 1e-7))
            w = w - m * alpha / denom
        elif kind == "rmsprop":
            rho, eps = f32(cfg.get("rho", 0.9)), f32(cfg.get("epsilon", 1e-7))
            v = rho * v + f32(1 - cfg.get("rho", 0.9)) * g * g
            if cfg.get("centered"):
                m = rho * m + f32(1 - cfg.get("rho", 0.9)) * g
                denom = v - m * m + eps
            else:
                denom = v + eps
            increment = lr * g / np.sqrt(denom)
            mu = f32(cfg.get("momentum", 0.0))
            if mu > 0:
                v_hat = mu * v_hat + increment
                w = w - v_hat
            else:
                w = w - increment
        elif kind == "adagrad":
            acc = acc + g * g
            w = w - lr * g / np.sqrt(acc + f32(cfg.get("epsilon", 1e-7)))
        out.append(w.copy())
    return np.array(out)
