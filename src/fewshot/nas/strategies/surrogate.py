"""An ensemble of small MLPs as a performance predictor with an uncertainty (BANANAS' surrogate).

Written in numpy with a hand-written backward pass: at these sizes (hundreds of points, width 32)
per-operation overhead dominates, and numpy's is several times lower than autograd's.
"""

from __future__ import annotations

import numpy as np


class MLPEnsemble:
    """``members`` ReLU MLPs (``layers`` hidden layers of width ``hidden``) differing in their initialisation,
    trained together full-batch with Adam on standardised targets. ``predict`` -> (mean, std) over members."""

    def __init__(self, members: int = 5, hidden: int = 32, layers: int = 2, steps: int = 200, lr: float = 0.01):
        self.members, self.hidden, self.layers, self.steps, self.lr = members, hidden, layers, steps, lr
        self.weights: list[np.ndarray] = []  # [E, in, out] per layer
        self.biases: list[np.ndarray] = []  # [E, 1, out] per layer
        self.y_mean, self.y_std = 0.0, 1.0

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """x: [N, D] -> predictions [E, N] and the hidden activations [E, N, H] (for the backward pass)."""
        acts = []
        h = np.broadcast_to(x, (self.members, *x.shape))  # [E, N, D]
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = np.maximum(h @ w + b, 0.0)  # [E, N, H]
            acts.append(h)
        out = h @ self.weights[-1] + self.biases[-1]  # [E, N, 1]
        return out[..., 0], acts

    def _gradients(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Gradients of each member's mean squared error, weights then biases per layer."""
        pred, acts = self._forward(x)
        d = (2.0 / len(y)) * (pred - y)[..., None]  # [E, N, 1]
        grads = []
        inputs = [np.broadcast_to(x, (self.members, *x.shape))] + acts
        for layer in range(len(self.weights) - 1, -1, -1):
            grads.append((inputs[layer].transpose(0, 2, 1) @ d, d.sum(axis=1, keepdims=True)))
            if layer:
                d = (d @ self.weights[layer].transpose(0, 2, 1)) * (acts[layer - 1] > 0)  # [E, N, H]
        grads.reverse()
        return [g for pair in grads for g in pair]

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> MLPEnsemble:
        """x: [N, D], y: [N]."""
        rng = np.random.default_rng(seed)
        widths = [x.shape[1]] + [self.hidden] * self.layers + [1]
        self.weights = [
            (rng.standard_normal((self.members, i, o)) * np.sqrt(2.0 / i)).astype(np.float32)
            for i, o in zip(widths, widths[1:])
        ]
        self.biases = [np.zeros((self.members, 1, o), dtype=np.float32) for o in widths[1:]]
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
        x = np.asarray(x, dtype=np.float32)
        t = ((np.asarray(y, dtype=np.float64) - self.y_mean) / self.y_std).astype(np.float32)
        params = [p for pair in zip(self.weights, self.biases) for p in pair]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for step in range(1, self.steps + 1):
            grads = self._gradients(x, t)
            scale = self.lr * np.sqrt(1 - beta2**step) / (1 - beta1**step)
            for p, g, mi, vi in zip(params, grads, m, v):
                mi *= beta1
                mi += (1 - beta1) * g
                vi *= beta2
                vi += (1 - beta2) * g * g
                p -= scale * mi / (np.sqrt(vi) + eps)  # in place: params alias weights and biases
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x: [M, D] -> mean [M], std [M] in the targets' units."""
        out = self._forward(np.asarray(x, dtype=np.float32))[0].astype(np.float64) * self.y_std + self.y_mean  # [E, M]
        return out.mean(0), out.std(0)
