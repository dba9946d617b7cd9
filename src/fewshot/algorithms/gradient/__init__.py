"""Gradient-based meta-learners: MAML, FOMAML, ANIL and Meta-SGD (MAML variants), Reptile."""

from fewshot.algorithms.gradient.anil import ANIL
from fewshot.algorithms.gradient.common import GradientAlgorithm
from fewshot.algorithms.gradient.maml import FOMAML, MAML
from fewshot.algorithms.gradient.metasgd import MetaSGD
from fewshot.algorithms.gradient.reptile import Reptile

__all__ = ["ANIL", "FOMAML", "MAML", "GradientAlgorithm", "MetaSGD", "Reptile"]
