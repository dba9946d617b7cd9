"""Meta-learning algorithms behind one interface (see ``base.Algorithm``)."""

from fewshot.algorithms.base import Algorithm, Predictor
from fewshot.algorithms.baseline import FineTune
from fewshot.algorithms.gradient import ANIL, FOMAML, MAML, MetaSGD, Reptile
from fewshot.algorithms.metric import MatchingNet, ProtoNet, RelationNet

__all__ = [
    "ANIL",
    "FOMAML",
    "MAML",
    "Algorithm",
    "FineTune",
    "MatchingNet",
    "MetaSGD",
    "Predictor",
    "ProtoNet",
    "RelationNet",
    "Reptile",
]
