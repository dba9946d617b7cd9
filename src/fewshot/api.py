"""The Python API: pick an algorithm by name, meta-train, evaluate, deploy, save, load.

learner = Learner("protonet", dataset="glyphs", steps=2000)
learner.fit()
print(learner.evaluate())                 # 600 test episodes, mean and 95% CI
predict = learner.deploy(support_x, support_y)
logits = predict(query_x)
learner.save("my-learner"); Learner.load("my-learner")
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch

from fewshot.algorithms.base import Algorithm, Predictor
from fewshot.algorithms.spec import LearnerSpec, build_algorithm
from fewshot.data.loading import get_dataset
from fewshot.engine.checkpoint import save_checkpoint
from fewshot.engine.config import TrainConfig, load_config
from fewshot.engine.evaluate import EvalResult, evaluate
from fewshot.engine.learners import check_names, checkpoint_metadata, learner_spec, load_learner
from fewshot.engine.runs import LATEST, RUNS, resume_config
from fewshot.engine.train import Trainer, TrainResult


class Learner:
    """A meta-learner and the data settings it is trained and evaluated with.

    ``settings`` are ``TrainConfig`` fields (``ways``, ``shots``, ``steps``, ``lr``,
    ``algorithm_options``...); ``config`` a preset name or YAML/TOML file applied first.
    """

    def __init__(
        self, algorithm: str | None = None, dataset: str | None = None, *, config: str | None = None, **settings
    ):
        self.config: TrainConfig = load_config(config, algorithm=algorithm, dataset=dataset, **settings)
        check_names(self.config)
        self.spec: LearnerSpec | None = None
        self._algorithm: Algorithm | None = None

    # -- data -----------------------------------------------------------------------------
    def dataset(self, split: str):
        c = self.config
        return get_dataset(c.dataset, root=c.data_root, split=split, **c.dataset_options)

    @cached_property
    def train_data(self):
        return self.dataset(self.config.train_split)

    # -- the learner ------------------------------------------------------------------------
    @property
    def algorithm(self) -> Algorithm:
        if self._algorithm is None:
            self.spec = learner_spec(self.config, self.train_data)
            torch.manual_seed(self.config.seed)
            self._algorithm = build_algorithm(self.spec)
        return self._algorithm

    @classmethod
    def resume(cls, run_dir=None, **changes) -> Learner:
        """The learner of the run in ``run_dir`` (default ``runs/latest``) with its own configuration;
        ``changes`` may extend it (``steps``, ``time_limit``, ``device``...), see ``engine.runs``."""
        run_dir = Path(run_dir) if run_dir is not None else (RUNS / LATEST).resolve()
        return cls(**resume_config(run_dir, changes).to_dict())

    def fit(self, resume: bool = False, callback=None, *, overwrite: bool = False) -> TrainResult:
        """Meta-train into ``config.out`` (``None``: a new folder under ``runs/``); validation and test
        splits are used when the dataset has them. ``resume`` continues the run there (its settings must
        match, see ``Learner.resume``); ``overwrite`` replaces a run there."""
        if resume:
            out = self.config.out or (RUNS / LATEST).resolve()
            self.config = resume_config(out, self.config.to_dict())
        c = self.config
        algorithm = self.algorithm
        transform = None
        if c.augment:
            from fewshot.data.transforms import default_augmentation

            transform = default_augmentation()
        trainer = Trainer(
            c,
            algorithm,
            self.train_data,
            self._optional(c.val_split),
            self._optional(c.test_split) if c.test_episodes else None,  # no test: its split is never read
            spec=self.spec,
            transform=transform,
            resume=resume,
            overwrite=overwrite,
        )
        self.config = trainer.config  # where the run went
        return trainer.fit(callback=callback)

    def _optional(self, split: str):
        if split in (None, "", "none"):
            return None
        return self.dataset(split)

    def evaluate(
        self,
        dataset=None,
        *,
        split: str | None = None,
        ways: int | None = None,
        shots: int | None = None,
        queries: int | None = None,
        episodes: int = 600,
        seed: int = 0,
    ) -> EvalResult:
        """The field's protocol on held-out tasks (the config's test split by default)."""
        data = dataset if dataset is not None else self.dataset(split or self.config.test_split)
        w, k, q = self.config.eval_shape
        return evaluate(self.algorithm, data, ways or w, shots or k, queries or q, episodes=episodes, seed=seed)

    def deploy(self, support_x, support_y) -> Predictor:
        """Adapt to one new task (support_x [S, ...], support_y [S] in 0..N-1): a predictor of logits."""
        algorithm = self.algorithm.eval()
        predictor = algorithm.adapt(torch.as_tensor(support_x), torch.as_tensor(support_y))

        def predict(query_x):
            with torch.no_grad():
                return predictor(torch.as_tensor(query_x))

        return predict

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path) -> Path:
        algorithm = self.algorithm
        return save_checkpoint(path, algorithm.state_dict(), checkpoint_metadata(self.spec, self.config))

    @classmethod
    def load(cls, path) -> Learner:
        """The learner in a checkpoint (or run) folder, with the settings it was trained with."""
        algorithm, stored = load_learner(path)
        if stored.config is not None:
            learner = cls(**stored.config.to_dict())
        else:
            s = stored.spec
            learner = cls(s.algorithm, backbone=s.backbone, ways=s.ways, algorithm_options=s.algorithm_options)
        learner._algorithm, learner.spec = algorithm, stored.spec
        return learner

    def __repr__(self) -> str:
        c = self.config
        return f"Learner({c.algorithm!r}, dataset={c.dataset!r}, backbone={c.backbone!r}, {c.ways}-way {c.shots}-shot)"
