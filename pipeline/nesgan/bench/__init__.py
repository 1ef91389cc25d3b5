"""Benchmarks (`make bench`): every figure is a ratio against a reference measured in the same run.

Each benchmark is a module here with `run(out: Path, quick: bool) -> dict` returning its figures;
`python -m nesgan.bench` runs them all and writes bench-out/results.json plus a readable table.
"""

BENCHMARKS = ["scrape_bench", "crop_bench", "train_bench", "threads_bench", "arch_bench",
              "quantize_bench", "nearcopy_bench", "sheet_bench", "level_bench", "patterns_bench"]
