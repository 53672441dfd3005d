from __future__ import annotations

import pandas as pd

from medseg.report.tables import leaderboard, markdown_table


def test_markdown_table_keeps_integers():
    df = pd.DataFrame({"n": [4, 5], "dice": [0.5, 0.25]}, index=pd.Index([0, 1], name="fold"))
    md = markdown_table(df, "fold").splitlines()
    assert md[0] == "| fold | n | dice |" and md[2] == "| 0 | 4 | 0.5000 |"


def test_leaderboard_rows_and_ci():
    a = pd.DataFrame({"dice": [0.5, 0.7, 0.6], "hd95": [3.0, 2.0, 1.0]}, index=["x", "y", "z"])
    board = leaderboard({"A": a}, {"A": "fold"}, metrics=("dice", "hd95"), n_boot=500)
    assert board.loc["A", "kind"] == "fold" and board.loc["A", "n_cases"] == 3
    assert abs(board.loc["A", "dice"] - 0.6) < 1e-12 and board.loc["A", "hd95"] == 2.0
    assert 0.5 <= board.loc["A", "dice_ci_low"] <= 0.6 <= board.loc["A", "dice_ci_high"] <= 0.7
