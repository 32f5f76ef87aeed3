"""benchmarks.readme_results: the results tables of README.md and docs/results/benchmarks.md are what the committed
result files give now, so the pages cannot drift from the numbers."""

from __future__ import annotations

from pathlib import Path

from benchmarks import readme_results


def test_the_results_tables_equal_what_the_committed_files_give() -> None:
    for path, text in readme_results.pages().items():
        assert path.read_text() == text, (
            f"{path.name}: its results tables differ from the committed result files; "
            "run python -m benchmarks.readme_results")


def test_the_readme_table_has_one_row_per_goal_cell_and_names_its_sources() -> None:
    table = readme_results.readme_table().splitlines()
    assert len(table) == 2 + 2 * len(readme_results.GOAL_ENVS)
    hopper_trpo = next(line for line in table if line.startswith("| Hopper | TRPO |"))
    assert "(rl-zoo)" in hopper_trpo and "0.91×" in hopper_trpo


def test_the_like_for_like_ratio_uses_the_published_sources_metric() -> None:
    row = {"peak_mean_eval": {"mean": 300.0}, "final_eval": {"mean": 200.0}}
    assert readme_results.like_for_like(row, "tianshou") == 300.0
    assert readme_results.like_for_like(row, "zoo") == 200.0


def test_the_figure_is_drawn_from_the_files(tmp_path: Path) -> None:
    path = readme_results.figure(tmp_path / "results.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
