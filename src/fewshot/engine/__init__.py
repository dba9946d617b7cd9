"""Training, evaluation, checkpoints and logging: the layer with side effects."""

from fewshot.engine.evaluate import EvalResult, confidence_interval, evaluate, evaluate_episodes

__all__ = ["EvalResult", "confidence_interval", "evaluate", "evaluate_episodes"]
