"""Meta-optimization: learned optimizers (an LSTM and an MLP rule) meta-trained by truncated
backpropagation through unrolled optimization, deployable as a ``torch.optim.Optimizer``, as the
inner optimizer of MAML and friends, and from ``fewshot metaopt``. The core never imports it.
"""

from fewshot.metaopt.optimizees import OPTIMIZEES, Optimizee, optimizee_family
from fewshot.metaopt.rules import RULES, LearnedRule, LSTMRule, MLPRule, preprocess_gradients
from fewshot.metaopt.store import load_rule, save_rule
from fewshot.metaopt.torch_optim import LearnedOptimizer
from fewshot.metaopt.train import MetaTrainConfig, MetaTrainResult, config_from_dict, meta_train

__all__ = [
    "OPTIMIZEES",
    "RULES",
    "LSTMRule",
    "LearnedOptimizer",
    "LearnedRule",
    "MLPRule",
    "MetaTrainConfig",
    "MetaTrainResult",
    "Optimizee",
    "config_from_dict",
    "load_rule",
    "meta_train",
    "optimizee_family",
    "preprocess_gradients",
    "save_rule",
]
