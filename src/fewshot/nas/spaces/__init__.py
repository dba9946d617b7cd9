"""Search spaces: categorical (YAML/Python), tabular benchmarks, the DARTS cell space."""

from fewshot.nas.spaces.base import Arch, SearchSpace
from fewshot.nas.spaces.categorical import CategoricalSpace, Position, cell_space, load_space_file, space_from_dict
from fewshot.nas.spaces.tabular import TableSpace, TabularBenchmark, infer_space, load_table

__all__ = [
    "Arch",
    "CategoricalSpace",
    "Position",
    "SearchSpace",
    "TableSpace",
    "TabularBenchmark",
    "cell_space",
    "infer_space",
    "load_space_file",
    "load_table",
    "space_from_dict",
]
