"""Names -> things: one generic, lazily importing ``Registry`` for every kind of thing the library
builds by name, the built-in entries of each, and checks of the options given to them.

An entry is ``"module:attribute"``, imported on first use, so ``import fewshot`` stays light and
this module imports nothing of the library. Third-party packages add entries through entry points
in the registry's group (``fewshot.algorithms``, ``fewshot.datasets``, ...), for instance::

    [project.entry-points."fewshot.algorithms"]
    my-method = "my_package.method:MyMethod"

Adding a built-in is one line below, next to its file.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any


class Registry:
    """``name -> "module:attribute"``, loaded on first ``get``; unknown names are one error listing the valid ones."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind, self.group = kind, group
        self._targets: dict[str, str | Any] = {}
        self._plugins_read = False

    def register(self, name: str, target: str | Any | None = None) -> Any:
        """Add ``name``: a ``"module:attribute"`` string (lazy) or the object itself; without
        ``target``, a decorator (``@ALGORITHMS.register("toy")``)."""
        if target is None:

            def decorator(obj: Any) -> Any:
                self.register(name, obj)
                return obj

            return decorator
        if name in self._targets and self._targets[name] is not target:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._targets[name] = target
        return target

    def unregister(self, name: str) -> None:
        self._targets.pop(name, None)

    def _read_plugins(self) -> None:
        if not self._plugins_read:
            self._plugins_read = True
            for ep in entry_points(group=self.group):
                self._targets.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._read_plugins()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def check(self, name: str) -> None:
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")

    def get(self, name: str) -> Any:
        """The entry ``name``, imported now if it was registered as a string."""
        self.check(name)
        target = self._targets[name]
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            try:
                target = getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError) as e:
                raise ValueError(f"{self.kind} {name!r} ({self._targets[name]}) cannot be loaded: {e}") from e
            self._targets[name] = target
        return target

    def module(self, name: str) -> str:
        """The module that entry ``name`` lives in, without importing it."""
        self.check(name)
        target = self._targets[name]
        return target.partition(":")[0] if isinstance(target, str) else getattr(target, "__module__", "")

    def summary(self, name: str) -> str:
        """The first sentence of the entry's docstring, on one line."""
        paragraph = " ".join((inspect.getdoc(self.get(name)) or "").split("\n\n", 1)[0].split())
        sentence = re.split(r"(?<=\.)\s", paragraph, maxsplit=1)[0].replace("``", "")
        return sentence if len(sentence) <= 100 else sentence[:99].rstrip(" ,;(") + "…"

    def build(self, name: str, *args: Any, reserved: tuple[str, ...] = (), **options: Any) -> Any:
        """``get(name)(*args, **options)`` after checking ``options`` against its signature
        (``reserved``: keywords among ``options`` that the caller, not the user, supplies)."""
        target = self.get(name)
        given = {k: v for k, v in options.items() if k not in reserved}
        check_options(target, given, f"{self.kind} {name!r}", reserved)
        return target(*args, **options)


ALGORITHMS = Registry("algorithm", "fewshot.algorithms")
for _name, _target in {
    "protonet": "fewshot.algorithms.metric.protonet:ProtoNet",
    "matching": "fewshot.algorithms.metric.matching:MatchingNet",
    "relation": "fewshot.algorithms.metric.relation:RelationNet",
    "maml": "fewshot.algorithms.gradient.maml:MAML",
    "fomaml": "fewshot.algorithms.gradient.maml:FOMAML",
    "anil": "fewshot.algorithms.gradient.anil:ANIL",
    "metasgd": "fewshot.algorithms.gradient.metasgd:MetaSGD",
    "reptile": "fewshot.algorithms.gradient.reptile:Reptile",
    "finetune": "fewshot.algorithms.baseline:FineTune",
}.items():
    ALGORITHMS.register(_name, _target)

BACKBONES = Registry("backbone", "fewshot.backbones")
for _name, _target in {
    "conv4": "fewshot.nn.backbones:Conv4",
    "resnet12": "fewshot.nn.backbones:ResNet12",
    "mlp": "fewshot.nn.backbones:MLP",
    "darts": "fewshot.nas.darts.network:DartsNetwork",  # a searched cell: backbone_options.genotype=...
}.items():
    BACKBONES.register(_name, _target)

DATASETS = Registry("dataset", "fewshot.datasets")  # labelled datasets and task families, by loader function
for _name, _target in {
    "glyphs": "fewshot.data.glyphs:load_glyphs",
    "omniglot": "fewshot.data.omniglot:load_omniglot",
    "omniglot-runs": "fewshot.data.omniglot_runs:load_omniglot_runs",
    "image-folder": "fewshot.data.image_folder:load_image_folder",
    "sinusoid": "fewshot.data.sinusoid:load_sinusoid",
    "fs-mol": "fewshot.molecules.fsmol:load_fs_mol",  # assay task families (the molecules extra)
    "assays": "fewshot.molecules.assays:load_assays",
    "tox21": "fewshot.molecules.assays:load_tox21",
    "sider": "fewshot.molecules.assays:load_sider",
    "muv": "fewshot.molecules.assays:load_muv",
}.items():
    DATASETS.register(_name, _target)

INNER_OPTIMIZERS = Registry("inner optimizer", "fewshot.inner_optimizers")
for _name, _target in {
    "sgd": "fewshot.optim.inner:sgd",
    "adam": "fewshot.optim.inner:adam",
    "learned-mlp": "fewshot.metaopt.rules:learned_mlp",  # meta-learned with the initialisation (metaopt)
    "learned-lstm": "fewshot.metaopt.rules:learned_lstm",
}.items():
    INNER_OPTIMIZERS.register(_name, _target)

COMMANDS = Registry("command", "fewshot.commands")  # ``fewshot NAME ...`` of packages the core never imports
COMMANDS.register("nas", "fewshot.nas.cli:main")
COMMANDS.register("metaopt", "fewshot.metaopt.cli:main")
COMMANDS.register("tune", "fewshot.metaopt.tune:main")
COMMANDS.register("rl", "fewshot.rl.cli:main")
COMMANDS.register("molecules", "fewshot.molecules.cli:main")


def accepted_options(target) -> set[str] | None:
    """Keyword names that ``target`` (a class or function) takes, following ``**settings`` up the
    class hierarchy; ``None`` when it takes any keyword."""
    names: set[str] = set()
    inits = [vars(c)["__init__"] for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else []
    for fn in inits or [target]:
        params = inspect.signature(fn).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self"}
    return None


def required_options(target) -> set[str]:
    """Keyword names that ``target`` (a class or function) needs: its own parameters without a default."""
    fn = (
        vars(next(c for c in target.__mro__ if "__init__" in vars(c)))["__init__"]
        if isinstance(target, type)
        else target
    )
    params = list(inspect.signature(fn).parameters.values())[1 if isinstance(target, type) else 0 :]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty}


def check_options(target, options: dict, what: str, reserved: tuple[str, ...] = ()) -> None:
    """One clear error for options ``target`` does not take (``--set algorithm_options.nonsense=1``) or
    needs and lacks; ``reserved``: the ones the caller supplies."""
    valid = accepted_options(target)
    if valid is not None:
        valid -= set(reserved)
        unknown = sorted(set(options) - valid)
        if unknown:
            listed = ", ".join(sorted(valid)) or "none"
            raise ValueError(f"unknown {what} option(s) {', '.join(unknown)}; valid: {listed}")
    missing = sorted(required_options(target) - set(options) - set(reserved))
    if missing:
        raise ValueError(f"{what} needs option(s) {', '.join(missing)}")
