"""Atomic writes: a failed write leaves the old file and no temporary file behind."""

import json

import pytest

from fewshot.files import write_atomically, write_json_atomically, write_text_atomically


def test_a_failed_write_leaves_the_old_file_and_no_litter(tmp_path):
    path = write_text_atomically(tmp_path / "a" / "state.json", "old")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, half_then_fail)
    assert path.read_text() == "old" and sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
    write_json_atomically(path, {"step": 3})
    assert json.loads(path.read_text()) == {"step": 3} and len(list(path.parent.iterdir())) == 1
