import pytest

from fewshot.algorithms.spec import LearnerSpec, build_algorithm
from fewshot.engine.config import list_presets, load_config, parse_overrides, read_settings
from fewshot.engine.learners import check_names
from fewshot.registry import ALGORITHMS

PUBLISHED = [
    f"omniglot-{a}-{r}"
    for a in ("protonet", "matching", "relation", "maml", "fomaml", "anil", "metasgd", "reptile")
    for r in ("5w1s", "5w5s", "20w1s", "20w5s")
]


def test_published_setups_have_presets():
    assert set(PUBLISHED) | {"sinusoid-maml-k5", "sinusoid-maml-k10"} <= set(list_presets())


BASES = ("omniglot", "omniglot-strided")  # the dataset settings the Omniglot presets start from


@pytest.mark.parametrize("name", [p for p in list_presets() if p not in BASES])
def test_every_preset_builds_its_learner(name):
    cfg = load_config(name)
    check_names(cfg)
    regression = cfg.dataset == "sinusoid"
    spec = LearnerSpec(
        algorithm=cfg.algorithm,
        algorithm_options=cfg.algorithm_options,
        backbone=cfg.backbone,
        backbone_options=cfg.backbone_options,
        input_shape=(1,) if regression else (1, 28, 28),
        ways=cfg.ways,
        task="regression" if regression else "classification",
        target_dim=1,
        num_train_classes=100,
    )
    algorithm = build_algorithm(spec)
    assert type(algorithm) is ALGORITHMS.get(cfg.algorithm)
    if algorithm.fixed_ways:  # a head of one unit per class (or regression target)
        assert algorithm.model.head.out_features == (1 if regression else cfg.ways)
    if cfg.dataset == "omniglot":
        assert cfg.dataset_options == {"splits": "vinyals", "image_size": 28} and cfg.test_episodes >= 600
        # the papers train on all 1,200 training characters of the Vinyals split, keeping no validation classes
        assert (cfg.train_split, cfg.val_split, cfg.test_split) == ("trainval", "none", "test")


@pytest.mark.parametrize("name", PUBLISHED)
def test_gradient_rows_use_the_papers_strided_network(name):
    # MAML, Reptile and their kin downsample Omniglot with stride-2 convs; the metric papers with maxpools
    gradient = name.split("-")[1] in ("maml", "fomaml", "anil", "metasgd", "reptile")
    downsample = load_config(name).backbone_options.get("downsample", "maxpool")
    assert downsample == ("stride" if gradient else "maxpool")


@pytest.mark.parametrize("cell", ["5w1s", "5w5s", "20w1s", "20w5s"])
def test_reptile_presets_carry_the_inner_adam_as_the_papers_code(cell):
    options = load_config(f"omniglot-reptile-{cell}").algorithm_options
    assert options["inner_optimizer"] == "adam" and options["carry_adam"] is True


def test_base_files_and_overrides(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: omniglot-maml-5w1s\nalgorithm_options: {inner_steps: 2}\nlr: 0.01\n")
    (tmp_path / "child.toml").write_text('base = "mine.yaml"\nsteps = 7\n')
    cfg = load_config(str(tmp_path / "child.toml"), meta_batch=4)
    assert (cfg.algorithm, cfg.lr, cfg.steps, cfg.meta_batch) == ("maml", 0.01, 7, 4)
    assert cfg.algorithm_options == {"inner_lr": 0.4, "inner_steps": 2, "adapt_steps": 3}
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        read_settings(str(tmp_path / "loop.yaml"))
    with pytest.raises(FileNotFoundError, match="neither a file nor a preset"):
        load_config("no-such-preset")
    (tmp_path / "bad.yaml").write_text("ways: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"))


def test_exponent_numbers_are_floats(tmp_path):
    # plain YAML 1.1 reads 1e-3 as the string "1e-3"
    (tmp_path / "e.yaml").write_text("base: omniglot-maml-5w1s\nlr: 1e-3\nalgorithm_options: {inner_lr: 4.0E-1}\n")
    cfg = load_config(str(tmp_path / "e.yaml"))
    assert cfg.lr == 0.001 and cfg.algorithm_options["inner_lr"] == 0.4
    assert parse_overrides(["time_limit=1e9", "algorithm_options.inner_lr=-2.5e-2", "seed=12", "name=e5"]) == {
        "time_limit": 1e9,
        "algorithm_options": {"inner_lr": -0.025},
        "seed": 12,
        "name": "e5",
    }
