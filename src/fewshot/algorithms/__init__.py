"""Meta-learning algorithms behind one interface (see ``base.Algorithm``)."""

from fewshot.algorithms.base import Algorithm, Predictor

__all__ = ["Algorithm", "Predictor"]
