"""Neural architecture search: search spaces, query strategies, DARTS, tabular benchmarks.

The core of ``fewshot`` never imports this package. Importing it is light: heavy parts
(torch for DARTS, matplotlib for plots) load when first used.
"""

from fewshot.nas.errors import NASError
from fewshot.nas.problem import Evaluation, Problem, regret
from fewshot.nas.runner import Search, SearchResult, search

__all__ = ["Evaluation", "NASError", "Problem", "Search", "SearchResult", "regret", "search"]
