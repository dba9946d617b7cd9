"""The one error type of ``fewshot.nas`` for bad input (the CLI turns it into one line and exit 2)."""


class NASError(ValueError):
    """A space, table, architecture string, strategy, budget or genotype that cannot be used."""
