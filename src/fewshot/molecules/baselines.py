"""Single-task baselines with scikit-learn, fitted on each support set: random forest and kNN."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from fewshot.molecules.tasks import check_support

KNN_NEIGHBOURS = (4, 8, 16, 32, 64, 128)


class RandomForest:
    """Scorer: a random forest fitted on the support, the query's probability of being active.

    Fixed settings (no grid search, unlike FS-Mol's baseline which searched 144 settings).
    """

    def __init__(self, n_estimators: int = 100, seed: int = 0, **options):
        self.options = {"n_estimators": n_estimators, "random_state": seed, "n_jobs": 1, **options}

    def __call__(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        from sklearn.ensemble import RandomForestClassifier

        check_support(support_y)
        model = RandomForestClassifier(**self.options).fit(support_x.numpy(), support_y.numpy())
        return torch.from_numpy(model.predict_proba(query_x.numpy())[:, 1])


class KNN:
    """Scorer: k-nearest neighbours on the support; ``neighbours=None`` picks k by 5-fold
    cross-validation among 4..128 below half the support (as FS-Mol's kNN baseline)."""

    def __init__(self, neighbours: int | None = None, metric: str = "minkowski"):
        self.neighbours, self.metric = neighbours, metric

    def __call__(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        from sklearn.model_selection import GridSearchCV
        from sklearn.neighbors import KNeighborsClassifier

        check_support(support_y)
        x, y = support_x.numpy(), support_y.numpy()
        if self.neighbours is not None:
            model = KNeighborsClassifier(min(self.neighbours, len(y)), metric=self.metric).fit(x, y)
        else:
            grid = [k for k in KNN_NEIGHBOURS if k < len(y) // 2] or [max(1, len(y) // 2)]
            folds = int(min(5, np.bincount(y).min()))
            if folds < 2 or len(grid) == 1:
                model = KNeighborsClassifier(grid[0], metric=self.metric).fit(x, y)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    search = GridSearchCV(KNeighborsClassifier(metric=self.metric), {"n_neighbors": grid}, cv=folds)
                    model = search.fit(x, y).best_estimator_
        return torch.from_numpy(model.predict_proba(query_x.numpy())[:, 1])
