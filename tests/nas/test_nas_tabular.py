"""Tabular benchmarks: tables in both formats, several runs per architecture, bad tables."""

import json

import numpy as np
import pytest
from nas_tables import cell_value, write_cell_table, write_choice_table

from fewshot.nas import NASError
from fewshot.nas.spaces import load_table


def test_repeated_rows_are_runs_drawn_by_the_generator_and_reported_as_their_mean(tmp_path):
    path = write_choice_table(tmp_path / "t.csv", positions=3, choices=2, runs=3, noise=1.0)
    bench = load_table(path, metric="acc")
    arch = bench.space.parse("101")
    runs = bench.runs[arch]
    assert runs.shape == (3,) and bench.report[arch] == pytest.approx(runs.mean())
    drawn = {bench.evaluate(arch, np.random.default_rng(s)).metric for s in range(40)}
    assert drawn == set(runs.tolist())  # every run can be drawn, nothing else
    again = [bench.evaluate(arch, np.random.default_rng(7)).metric for _ in range(2)]
    assert again[0] == again[1]  # same generator state, same run


def test_report_metric_and_optimum(tmp_path):
    bench = load_table(write_choice_table(tmp_path / "t.csv"), metric="acc", report_metric="test_acc")
    assert bench.optimum_archs == ["2222"] and bench.optimum == pytest.approx(20.6)  # 2*(1+2+3+4) + 0.5 + 0.1
    assert bench.evaluate(bench.space.parse("2222"), np.random.default_rng(0)).report == pytest.approx(20.6)


def test_json_list_cells_are_runs(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"01": {"acc": [1.0, 3.0]}, "10": {"acc": [2.0, 2.0]}, "11": {"acc": [5.0, 1.0]}}))
    bench = load_table(path, metric="acc")
    assert bench.space.size == 3 and not bench.space.complete  # "00" is missing from the table
    assert bench.report[bench.space.parse("01")] == 2.0
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert bench.space.contains(bench.space.mutate(bench.space.sample(rng), rng))  # moves stay in the table
    with pytest.raises(NASError, match="not in the table"):
        bench.space.parse("00")


def test_cell_string_table_without_code_changes(tmp_path):
    path = write_cell_table(tmp_path / "nb201.csv", ops=("none", "nor_conv_3x3", "avg_pool_3x3"), runs=2)
    bench = load_table(path, arch_column="arch_str", metric="valid_acc", report_metric="test_acc")
    assert bench.space.size == 3**6 and bench.space.base.codec.kind == "cell-string"
    best = bench.space.parse(bench.optimum_archs[0])
    assert bench.optimum == pytest.approx(cell_value(bench.space.base.values(best)))
    assert bench.optimum_archs == [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    ]


def test_bad_tables_are_named(tmp_path):
    path = write_choice_table(tmp_path / "t.csv", positions=2, choices=2)
    with pytest.raises(NASError, match="no column 'val'.*columns: arch, acc, test_acc"):
        load_table(path, metric="val")
    with pytest.raises(NASError, match="no architecture column 'name'"):
        load_table(path, arch_column="name", metric="acc")
    with pytest.raises(NASError, match="name the metric"):
        load_table(path)
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,acc\n0101,1\n012,2\n")
    with pytest.raises(NASError, match="'012' does not parse"):
        load_table(bad, metric="acc")
    bad.write_text("arch,acc\n0101,1\n0111,high\n")
    with pytest.raises(NASError, match="row 2.*'high' is not a number"):
        load_table(bad, metric="acc")
    bad.write_text("arch,acc\n|a~0|+|a~0|b~1|,1\n|a~0|+|a~1|b~1|,2\n")
    with pytest.raises(NASError, match="should be op~0"):
        load_table(bad, metric="acc")


def test_nas_bench_macro(macro_path):
    from fewshot.nas.benchmarks import get_benchmark

    bench = get_benchmark("nas-bench-macro")
    assert bench.space.size == 3**8 and bench.space.complete
    raw = json.loads(macro_path.read_text())
    best = max(raw, key=lambda k: raw[k]["mean_acc"])
    assert bench.optimum == pytest.approx(raw[best]["mean_acc"]) and best in bench.optimum_archs
    arch = bench.space.parse("02012100")
    assert bench.runs[arch].tolist() == raw["02012100"]["test_acc"]


def test_minimised_metric(tmp_path):
    from fewshot.nas import search
    from fewshot.nas.strategies import make_strategy

    bench = load_table(write_choice_table(tmp_path / "t.csv"), metric="acc", mode="min")
    assert bench.optimum_archs == ["0000"] and bench.optimum == pytest.approx(0.5)
    result = search(bench, make_strategy("local", bench.space), budget=40, seed=0)
    assert result.best == "0000" and result.regret == 0.0
    assert all(r["regret"] >= 0 for r in result.history)
