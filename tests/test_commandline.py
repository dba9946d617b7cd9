"""The pieces every ``fewshot`` command shares: KEY=VALUE settings and one-line errors."""

import pytest

from fewshot.commandline import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UsageError, one_line_errors, parse_settings


class Refused(ValueError):
    pass


def test_settings_are_yaml_values_and_bad_pairs_raise_the_given_error():
    assert parse_settings(["lr=1e-3", "first_order=true", "ways=[5, 20]", " name =[1,"]) == {
        "lr": 1e-3,
        "first_order": True,
        "ways": [5, 20],
        "name": "[1,",  # not YAML: kept as text
    }
    with pytest.raises(UsageError, match="expected KEY=VALUE, got 'lr'"):
        parse_settings(["lr"])
    with pytest.raises(Refused):
        parse_settings(["=3"], Refused)


def test_errors_are_one_line_and_interrupts_exit_130(capsys):
    def refuse() -> int:
        raise Refused("no such preset 'x'")

    assert one_line_errors("fewshot x", refuse) == EXIT_USAGE
    assert capsys.readouterr().err == "fewshot x: error: no such preset 'x'\n"
    assert one_line_errors("fewshot x", lambda: Parser(prog="x").parse_args(["--nope"]) and 0) == EXIT_USAGE
    assert "unrecognized arguments: --nope" in capsys.readouterr().err

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert one_line_errors("fewshot x", interrupted) == EXIT_INTERRUPTED
    with pytest.raises(RuntimeError):  # not bad input: a traceback, as any bug
        one_line_errors("fewshot x", lambda: (_ for _ in ()).throw(RuntimeError("bug")))
