"""Training, evaluation, run folders, checkpoints and logging: the layer that writes files and processes."""

from fewshot.engine.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from fewshot.engine.config import TrainConfig, load_config
from fewshot.engine.evaluate import EvalResult, confidence_interval, evaluate, evaluate_episodes
from fewshot.engine.train import Trainer, TrainResult

__all__ = [
    "CheckpointError",
    "EvalResult",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "confidence_interval",
    "evaluate",
    "evaluate_episodes",
    "load_config",
    "read_checkpoint",
    "save_checkpoint",
]
