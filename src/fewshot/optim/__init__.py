"""Inner optimizers as values: ``state = opt.init(params)``, ``params, state = opt.step(params, grads, state)``."""

from fewshot.optim.inner import InnerOptimizer, LearnedRates, PerStepRates, adam, get_inner_optimizer, sgd

__all__ = ["InnerOptimizer", "LearnedRates", "PerStepRates", "adam", "get_inner_optimizer", "sgd"]
