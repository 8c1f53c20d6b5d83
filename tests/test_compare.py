"""scripts/compare.py: two models on one split."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import compare as compare_script  # noqa: E402


def test_a_model_compared_with_itself_differs_by_nothing(trained_dir, capsys):
    assert compare_script.main([str(trained_dir), str(trained_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["size"] == 60
    assert result["a"]["accuracy"] == result["b"]["accuracy"] and result["difference"]["accuracy"] == 0.0
    assert result["mcnemar"] == {"a_right_b_wrong": 0, "b_right_a_wrong": 0, "p_value": 1.0}
    assert compare_script.main([str(trained_dir), str(trained_dir)]) == 0
    assert "McNemar (exact)" in capsys.readouterr().out


def test_missing_model_is_one_line_and_exit_2(trained_dir, tmp_path, capsys):
    assert compare_script.main([str(trained_dir), str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
