"""The command line the CLI, run-folder, service and distributed tests train with: a few steps of a small
learner on a tree of drawn shapes (``images.make_tree``), 3-way 1-shot, 28x28 grey images."""


def train_argv(data, out=None, *flags: str, steps: int = 6, test_episodes: int = 4, **settings) -> list[str]:
    """``fewshot train`` arguments; ``flags`` go in as given, ``settings`` as ``--set KEY=VALUE``
    (dotted keys written with ``__``: ``dataset_options__channels=1``)."""
    argv = ["train", "--dataset", "image-folder", "--data-root", str(data), "--ways", "3", "--shots", "1"]
    argv += ["--queries", "2", "--steps", str(steps), "--quiet", "--test-episodes", str(test_episodes)]
    if out is not None:
        argv += ["--out", str(out)]
    settings = {"dataset_options__image_size": 28, "dataset_options__channels": 1, "tensorboard": "false", **settings}
    for key, value in settings.items():
        argv += ["--set", f"{key.replace('__', '.')}={value}"]
    return argv + list(flags)
