"""fewshot: meta-learning for PyTorch."""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Learner":  # imported on first use: `import fewshot` stays light
        from fewshot.api import Learner

        return Learner
    raise AttributeError(f"module 'fewshot' has no attribute {name!r}")
