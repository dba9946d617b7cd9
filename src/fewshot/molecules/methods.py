"""Learners for molecules from a small spec, saved with the core's checkpoint format (never pickled).

A spec: ``{"algorithm": "protonet" | "mahalanobis" | "adkf", "settings": {...}, "encoder": {"kind":
"mlp" | "gnn", ...}, "featurizer": "ecfp" | "ecfp+graph" | ...}``, or an ensemble of such learners:
``{"algorithm": "ensemble", "members": [spec, ...], "featurizer": ...}``. ``save_learner`` writes a core checkpoint
folder (``model.safetensors`` + ``checkpoint.json`` with the spec); the weights of fitted
descriptor standardizers travel in the same file under ``featurizer.``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from fewshot.algorithms.metric import ProtoNet
from fewshot.engine.checkpoint import METADATA, CheckpointError, load_state, read_checkpoint, save_checkpoint
from fewshot.molecules.adkf import DeepKernelGP
from fewshot.molecules.descriptors import Standardizer
from fewshot.molecules.ensemble import Columns, Ensemble
from fewshot.molecules.gnn import GNNEncoder
from fewshot.molecules.mahalanobis import MahalanobisProtoNet
from fewshot.molecules.tasks import AssayTasks
from fewshot.nn import MLP

ENCODERS = ("mlp", "gnn")
ALGORITHMS = ("protonet", "mahalanobis", "adkf")
Learner = ProtoNet | MahalanobisProtoNet | DeepKernelGP | Ensemble
STANDARDIZER_PREFIX = "featurizer.standardizer."


class DropoutMLP(nn.Module):
    """ReLU MLP over fingerprints/descriptors with dropout on the input and after each hidden layer."""

    def __init__(self, in_features: int, hidden: Sequence[int], dropout: float, input_dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(input_dropout)]
        for a, b in zip([in_features, *hidden[:-1]], hidden):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers[:-1])  # no dropout on the embedding itself
        self.feature_dim = hidden[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def build_encoder(kind: str, in_features: int = 2048, fp_dim: int = 2048, **settings) -> nn.Module:
    """``mlp``: fewshot.nn.MLP over fingerprints/descriptors (``DropoutMLP`` with ``dropout`` or
    ``input_dropout`` > 0); ``gnn``: GNNEncoder (``fp_dim`` 0 = graph only)."""
    if kind == "mlp":
        hidden = tuple(int(h) for h in settings.pop("hidden", (1024, 512)))
        dropout, input_dropout = float(settings.pop("dropout", 0.0)), float(settings.pop("input_dropout", 0.0))
        if settings:
            raise ValueError(f"unknown mlp encoder settings: {', '.join(settings)}")
        if dropout or input_dropout:
            return DropoutMLP(in_features, hidden, dropout, input_dropout)
        return MLP(in_features=in_features, hidden=hidden)
    if kind == "gnn":
        return GNNEncoder(fp_dim=fp_dim, **settings)
    raise ValueError(f"unknown encoder {kind!r}; valid: {', '.join(ENCODERS)}")


def build_learner(spec: dict) -> Learner:
    """A learner from ``{"algorithm": "protonet" | "mahalanobis" | "adkf", "encoder": {...}, "featurizer": ...}``
    or ``{"algorithm": "ensemble", "members": [spec, ...], "featurizer": ...}``."""
    algorithm = spec.get("algorithm", "protonet")
    if algorithm == "ensemble":
        members = spec.get("members") or []
        if any(m.get("featurizer") != spec.get("featurizer") for m in members):
            raise ValueError("an ensemble's members must share its featurizer")
        return Ensemble([build_learner(m) for m in members])
    encoder = build_encoder(**spec["encoder"])
    try:
        if algorithm == "protonet":
            return ProtoNet(encoder, **spec.get("settings", {}))
        if algorithm == "mahalanobis":
            return MahalanobisProtoNet(encoder, **spec.get("settings", {}))
        if algorithm == "adkf":
            return DeepKernelGP(encoder, **spec.get("settings", {}))
    except TypeError as e:  # an unknown setting
        raise ValueError(f"bad {algorithm} settings {spec.get('settings')}: {e}") from None
    raise ValueError(f"unknown molecule algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}, ensemble")


def standardizer_tensors(fitted: Sequence[Standardizer]) -> dict[str, Tensor]:
    """Fitted descriptor standardizers as named tensors (stored beside the learner's weights)."""
    return {f"{STANDARDIZER_PREFIX}{i}.{k}": v for i, s in enumerate(fitted) for k, v in s.state_dict().items()}


def split_standardizers(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[Standardizer]]:
    """(the learner's weights, the standardizers) of a stored state dict."""
    weights = {k: v for k, v in state.items() if not k.startswith(STANDARDIZER_PREFIX)}
    count = len({k.split(".")[2] for k in state if k.startswith(STANDARDIZER_PREFIX)})
    fitted = [
        Standardizer(state[f"{STANDARDIZER_PREFIX}{i}.mean"], state[f"{STANDARDIZER_PREFIX}{i}.std"])
        for i in range(count)
    ]
    return weights, fitted


def save_learner(
    learner: nn.Module,
    spec: dict,
    directory,
    metrics: dict | None = None,
    standardizers: Sequence[Standardizer] = (),
    training_state: dict | None = None,
) -> Path:
    """A core checkpoint folder (``model.safetensors`` + ``checkpoint.json``), written atomically."""
    state = {**learner.state_dict(), **standardizer_tensors(standardizers)}
    meta = {"domain": "molecules", "spec": spec, "metrics": metrics or {}}
    return save_checkpoint(directory, state, meta, training_state)


def load_learner(directory) -> tuple[Learner, dict]:
    """The learner (in eval mode) and its spec saved by ``save_learner``; ``ValueError`` if it is not one."""
    learner, spec, _ = load_learner_full(directory)
    return learner, spec


def load_learner_full(directory) -> tuple[Learner, dict, list[Standardizer]]:
    """``load_learner`` plus the fitted descriptor standardizers saved with it."""
    directory = Path(directory)
    try:
        if (directory / METADATA).is_file():
            meta, state = read_checkpoint(directory)
        else:  # the first format of this package: weights.safetensors + learner.json
            meta = json.loads((directory / "learner.json").read_text())
            state = load_file(str(directory / "weights.safetensors"))
        spec = meta["spec"]
        learner = build_learner(spec)
        weights, fitted = split_standardizers(state)
        load_state(learner, weights, directory)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{directory} is not a saved molecule learner: {e}") from e
    return learner.eval(), spec, fitted


def on_embeddings(learner: Learner, family: AssayTasks, batch: int = 512) -> tuple[Learner, AssayTasks]:
    """The learner with an identity encoder, and the family with each molecule's embedding as its features.

    Exact for encoders without batch statistics (MLP, GNNEncoder; dropout is off in eval mode);
    evaluation then encodes every molecule once instead of once per draw. Molecules are encoded on
    the encoder's device; the embeddings are kept in host memory, like the features. An ensemble's
    members' embeddings lie side by side, each member reading its own columns.
    """
    from fewshot.molecules.features import DenseFeatures
    from fewshot.molecules.tasks import AssayTask

    if isinstance(learner, Ensemble):
        members = learner.algorithms
        embeddings = [
            _embed(m.get_submodule("encoder"), family, batch) for m in members
        ]  # per member, per task [m, E_i]
        bounds = [0]
        for per_task in embeddings:
            bounds.append(bounds[-1] + per_task[0].shape[1])
        twin: Learner = Ensemble([_with_encoder(m, Columns(a, b)) for m, a, b in zip(members, bounds, bounds[1:])])
        values = [torch.cat(z, dim=1) for z in zip(*embeddings)]  # per task [m, sum E_i]
    else:
        twin, values = _with_encoder(learner, nn.Identity()), _embed(learner.encoder, family, batch)
    tasks = [AssayTask(t.name, DenseFeatures(values=z), t.labels) for t, z in zip(family.tasks, values)]
    return twin.eval(), AssayTasks(tasks, name=f"{family.name}:embedded", info=family.info)


def _embed(encoder: nn.Module, family: AssayTasks, batch: int) -> list[Tensor]:
    """Each task's molecules through ``encoder`` (eval mode, no gradients): per task [m, E], on the host."""
    encoder = encoder.eval()
    device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    with torch.no_grad():
        return [
            torch.cat([encoder(task.gather(i).to(device)).cpu() for i in torch.arange(len(task)).split(batch)])
            for task in family.tasks
        ]


def _with_encoder(learner, encoder: nn.Module):
    """A shallow twin of ``learner`` (parameters and settings shared) with ``encoder`` swapped in."""
    twin = copy.copy(learner)
    twin._modules = dict(learner._modules, encoder=encoder)
    return twin
