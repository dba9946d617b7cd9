"""The DARTS cell space: operations, genotypes, the discrete network, the supernet and the bilevel search."""

from fewshot.nas.darts.genotype import Genotype, make_genotype, parse_genotype
from fewshot.nas.darts.network import DartsNetwork, load_genotype
from fewshot.nas.darts.ops import OPS, PARAMETER_FREE
from fewshot.nas.darts.search import DartsResult, DartsSearch
from fewshot.nas.darts.supernet import Supernet, derive_genotype

__all__ = [
    "OPS",
    "PARAMETER_FREE",
    "DartsNetwork",
    "DartsResult",
    "DartsSearch",
    "Genotype",
    "Supernet",
    "derive_genotype",
    "load_genotype",
    "make_genotype",
    "parse_genotype",
]
