"""Run the benchmarks: `python -m nesgan.bench [--out bench-out] [--quick] [--only NAME ...]`."""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from nesgan.bench import BENCHMARKS
from nesgan.files import write_json


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m nesgan.bench", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--only", nargs="*", choices=BENCHMARKS, default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {}
    for name in args.only or BENCHMARKS:
        try:
            module = importlib.import_module(f"nesgan.bench.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"nesgan.bench.{name}":
                raise
            print(f"[{name}] not built yet, skipped")
            continue
        print(f"[{name}] running…", flush=True)
        t0 = time.perf_counter()
        figures = module.run(args.out / name, args.quick)
        figures["wall_seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = figures
        print(json.dumps(figures, indent=2, sort_keys=True), flush=True)
        write_json(args.out / "results.json", results)
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
