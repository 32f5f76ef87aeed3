"""benchmarks.readme_results: the results tables of README.md and docs/results/benchmarks.md are what the committed
result files give now, so the pages cannot drift from the numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import readme_results


def test_the_results_tables_equal_what_the_committed_files_give() -> None:
    for path, text in readme_results.pages().items():
        assert path.read_text() == text, (
            f"{path.name}: its results tables differ from the committed result files; "
            "run python -m benchmarks.readme_results")


def test_the_readme_table_has_one_row_per_goal_cell_and_names_its_sources() -> None:
    table = [line for line in readme_results.readme_table().splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2 * len(readme_results.GOAL_ENVS)
    hopper_trpo = next(line for line in table if line.startswith("| Hopper | TRPO |"))
    assert "(rl-zoo)" in hopper_trpo and "0.83×" in hopper_trpo  # 3006.0 / 3618.4


def test_the_like_for_like_ratio_uses_the_published_sources_metric() -> None:
    row = {"peak_mean_eval": {"mean": 300.0}, "final_eval": {"mean": 200.0}}
    assert readme_results.like_for_like(row, "tianshou") == 300.0
    assert readme_results.like_for_like(row, "zoo") == 200.0


def test_the_figure_is_drawn_from_the_files(tmp_path: Path) -> None:
    path = readme_results.figure(tmp_path / "results.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_table_names_the_commits_its_runs_were_made_at() -> None:
    note = readme_results.readme_table().splitlines()[-1]
    assert note.startswith("natgrad's runs were made with natgrad 0.1.0 at commit `3e3ea6b` (2026-12-08). ")
    assert "benchmarks.regression" in note
    rows = readme_results.algorithm_tables().splitlines()
    assert rows[0].endswith("| made at |")
    assert next(r for r in rows if r.startswith("| Hopper-v5 | TRPO |")).endswith("| `3e3ea6b` (2026-12-08) |")
    assert next(r for r in rows if r.startswith("| Hopper-v5 | PPO-KL |")).endswith("| `59749c5` (2026-11-27) |")
    assert "on 2026-11-27 (commit not recorded)" in readme_results.zoo_table()


def test_a_row_of_some_of_a_grids_seeds_is_made_when_the_grid_was() -> None:
    assert readme_results.made("goal-3e3ea6b/seeds-0-4") == readme_results.MADE_AT["goal-3e3ea6b"]
    with pytest.raises(SystemExit, match="docs/benchmarks/no-such-grid: add the commit"):
        readme_results.made("no-such-grid/seeds-0-4")


def test_a_merged_row_is_checked_against_the_grid_named_for_it(monkeypatch) -> None:
    monkeypatch.setitem(readme_results.ROW_GRIDS, ("Hopper", "ppo-kl"), "ppo-kl-swimmer")
    with pytest.raises(SystemExit, match="Hopper-v5 ppo-kl: name the grid under docs/benchmarks/ its row was run in"):
        readme_results.algorithm_tables()
    monkeypatch.delitem(readme_results.MADE_AT, "ppo-kl-1m")
    monkeypatch.setitem(readme_results.ROW_GRIDS, ("Hopper", "ppo-kl"), "ppo-kl-1m")
    with pytest.raises(SystemExit, match="docs/benchmarks/ppo-kl-1m: add the commit"):
        readme_results.algorithm_tables()
