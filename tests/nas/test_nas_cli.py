"""``fewshot nas search`` / ``compare`` end to end, and one-line errors with nothing written."""

import json
import subprocess
import sys

import pytest
from nas_tables import write_cell_table

from fewshot.nas.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_json_and_files(capsys, table_3x4, tmp_path):
    out = tmp_path / "run"
    search = ["search", "--space", str(table_3x4), "--metric", "acc", "--strategy", "evolution"]
    search += ["--set", "population=10", "--seed", "2", "--out", str(out)]
    code, stdout, _ = _run(capsys, *search, "--budget", "30", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert {"best", "metric", "regret", "queries"} <= set(summary) and summary["queries"] == 30
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 30 and history[-1]["best"] == summary["best"]
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "result.json", "state.json"]
    # a second search into the same folder is refused; --resume with a larger budget continues it
    code, _, err = _run(capsys, *search, "--budget", "40")
    assert code == 2 and "--resume" in err
    code, stdout, _ = _run(capsys, *search, "--budget", "40", "--resume", "--json")
    assert code == 0 and json.loads(stdout)["queries"] == 40


def test_cell_string_table_and_text_output(capsys, tmp_path):
    table = write_cell_table(tmp_path / "nb201.csv", ops=("none", "skip_connect", "nor_conv_3x3"))
    code, stdout, err = _run(
        capsys,
        "search",
        "--space",
        str(table),
        "--arch-column",
        "arch_str",
        "--metric",
        "valid_acc",
        "--report-metric",
        "test_acc",
        "--strategy",
        "local",
        "--budget",
        "100",
    )
    assert code == 0 and stdout.startswith("best |") and "regret" in stdout and "query 100/100" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["search", "--space", "nope", "--strategy", "random", "--budget", "5"],
            "unknown space 'nope'; valid: nas-bench-macro",
        ),
        (
            ["search", "--space", "{t}", "--metric", "acc", "--strategy", "rnd", "--budget", "5"],
            "valid: random, evolution",
        ),
        (["search", "--space", "{t}", "--metric", "loss", "--strategy", "random", "--budget", "5"], "no column 'loss'"),
        (
            ["search", "--space", "{t}", "--metric", "acc", "--strategy", "random", "--budget", "82"],
            "larger than the space",
        ),
        (
            ["search", "--space", "{t}", "--metric", "acc", "--strategy", "darts", "--budget", "5"],
            "differentiable space",
        ),
        (["search", "--space", "{t}", "--metric", "acc", "--strategy", "random", "--budget", "x"], "invalid int value"),
        (["compare", "--space", "{t}", "--metric", "acc", "--strategies", "random", "evo", "--budget", "5"], "'evo'"),
        (["frobnicate"], "invalid choice"),
        (["search", "--space", "darts", "--strategy", "darts", "--budget", "4", "--set", "foo=1"], "unknown: foo"),
        (["search", "--space", "darts", "--strategy", "evolution", "--budget", "4", "--space-set", "bogus=1"], "bogus"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(capsys, table_3x4, tmp_path, argv, message):
    out = tmp_path / "out"
    argv = [a.replace("{t}", str(table_3x4)) for a in argv] + ["--out", str(out)]
    code, stdout, err = _run(capsys, *argv)
    assert code == 2 and stdout == "" and err.count("\n") == 1 and message in err, err
    assert err.startswith("fewshot nas: error: ") and not out.exists()


def test_compare_writes_table_json_and_plot(capsys, table_3x4, tmp_path):
    code, stdout, _ = _run(
        capsys,
        "compare",
        "--space",
        str(table_3x4),
        "--metric",
        "acc",
        "--strategies",
        "random",
        "evolution",
        "--budget",
        "30",
        "--seeds",
        "5",
        "--checkpoints",
        "10,30",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0
    rows = json.loads(stdout)["rows"]
    assert [r["strategy"] for r in rows] == ["random", "evolution"] and len(rows[0]["30"]) == 2
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((tmp_path / "compare.json").read_text())["strategies"]["random"]["regret_mean"]) == 30


def test_nas_bench_macro_end_to_end(macro_path, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fewshot.nas",
            "search",
            "--space",
            "nas-bench-macro",
            "--strategy",
            "evolution",
            "--budget",
            "100",
            "--seed",
            "0",
            "--out",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["queries"] == 100 and len(summary["best"]) == 8 and 0 <= summary["regret"] < 1.0
    assert summary["metric"] == pytest.approx(93.12666320800781 - summary["regret"])
