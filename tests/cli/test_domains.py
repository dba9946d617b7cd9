"""Presets and runs of application packages reach the package's own command through the core's."""

import importlib
import json
import sys

import pytest

from fewshot.cli import main
from fewshot.cli.domains import domain_of
from fewshot.registry import COMMANDS


@pytest.fixture
def app(tmp_path, monkeypatch):
    """A package ``toyapp`` with a command that records its argv and a preset naming its domain."""
    package = tmp_path / "pkgs" / "toyapp"
    (package / "presets").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("calls = []\n\ndef main(argv):\n    calls.append(list(argv))\n    return 7\n")
    (package / "presets" / "toy-preset.yaml").write_text("domain: toyapp\nsteps: 3\n")
    (package / "presets" / "plain.yaml").write_text("steps: 3\n")  # no domain: not the package's
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    COMMANDS.register("toyapp", "toyapp.cli:main")
    yield importlib.import_module("toyapp.cli")
    COMMANDS.unregister("toyapp")
    sys.modules.pop("toyapp.cli", None)
    sys.modules.pop("toyapp", None)


def run_folder(path, **config):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def test_a_preset_naming_a_domain_goes_to_its_command(app, capsys):
    assert main(["train", "--config", "toy-preset", "--steps", "5"]) == 7
    assert app.calls == [["train", "--config", "toy-preset", "--steps", "5"]]
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.splitlines()[-1]
    assert listed.startswith("presets of application packages:") and "toy-preset" in listed and "plain" not in listed


def test_runs_naming_a_domain_go_to_its_command(app, tmp_path):
    run = run_folder(tmp_path / "run", domain="toyapp", steps=3)
    for argv in (["evaluate", run, "--json"], ["predict", run, "--support", "s.csv"], ["serve", run]):
        assert main(argv) == 7 and app.calls[-1] == argv
    assert main(["train", "--resume", "--out", run]) == 7 and app.calls[-1][:2] == ["train", "--resume"]


def test_everything_else_stays_with_the_core(app, tmp_path):
    assert domain_of(["train", "--config", "plain"]) is None  # an application preset without a domain
    assert domain_of(["train", "--config", "omniglot-anil-5w1s"]) is None  # a core preset
    assert domain_of(["train"]) is None
    assert domain_of(["evaluate", run_folder(tmp_path / "core", algorithm="protonet")]) is None
    assert domain_of(["evaluate", run_folder(tmp_path / "other", domain="not-a-command")]) is None
    assert domain_of(["evaluate", str(tmp_path / "missing")]) is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    assert domain_of(["evaluate", str(tmp_path / "bad")]) is None  # the core command reports it


def test_list_names_an_entry_that_cannot_be_loaded_and_why(capsys):
    from fewshot.registry import DATASETS

    DATASETS.register("broken-toy", "no_such_module_anywhere:load")
    try:
        assert main(["list"]) == 0
    finally:
        DATASETS.unregister("broken-toy")
    line = next(x for x in capsys.readouterr().out.splitlines() if "broken-toy" in x)
    assert line.split("broken-toy", 1)[1].strip() == "(cannot be loaded: No module named 'no_such_module_anywhere')"
