"""``python -m engine bench store``: write and query speed of the rollout store (protocol store-1m).

Generates a synthetic run in the real Parquet layout (``--rollouts`` rows over ``--steps`` files,
``--tokens`` per-token values per list column), then times the page queries (median of
``--repeats``) and the same per-prompt normalised reward density computed in pandas and in polars
(each checked to give our counts), and a bare ``pyarrow.parquet.write_table`` of the same rows as
the write baseline. Prints one JSON object; ``polars_reward_norm_ms`` and ``pyarrow_write_rows_per_s``
are part of the contract. Targets: >= 3x pandas, not slower than polars, writes >= 0.5x bare pyarrow.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import ConfigError, options

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rollouts", type=int, default=1_000_000, help="rows to generate (default 1M)")
    parser.add_argument("--steps", type=int, default=100, help="logged steps (one Parquet file each)")
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt")
    parser.add_argument("--tokens", type=int, default=32, help="response tokens per sample")
    parser.add_argument("--bins", type=int, default=60, help="histogram bins of the density query")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per query (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write the store here and keep it")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")


def _median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def pandas_reward_norm_density(files: list[Path], bins: int):
    """The reward_norm_density query written the plain pandas way (the baseline).

    One ``read_parquet`` over the file list: pyarrow reads the files on its thread pool, 1.5-2.4x
    faster (2 cores, loaded) than the earlier concatenation of one frame per file, which handicapped
    the baseline."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(files, columns=["run_id", "step", "prompt_id", "reward"])
    df = df[np.isfinite(df["reward"])]
    prompt_mean = df.groupby(["run_id", "step", "prompt_id"])["reward"].transform("mean")
    step_mean = df.groupby(["run_id", "step"])["reward"].transform("mean")
    x = df["reward"].astype("float64") - prompt_mean + step_mean
    lo, hi = x.min(), x.max()
    width = (hi - lo) / bins if hi > lo else 1.0
    df["bin"] = np.minimum(np.floor((x - lo) / width), bins - 1).astype("int64")
    counts = df.groupby(["run_id", "step", "bin"]).size().rename("count").reset_index()
    counts["density"] = counts["count"] / (
        counts.groupby(["run_id", "step"])["count"].transform("sum") * width
    )
    return counts


def polars_reward_norm_density(files: list[Path], bins: int):
    """The same density in polars: one lazy ``scan_parquet`` over the file list, window means per
    prompt and per step, then counts per (run, step, bin) (the stronger dataframe peer)."""
    try:
        import polars as pl
    except ImportError as exc:  # third-party, in the ``test`` extra
        raise ConfigError("bench store compares against polars: pip install -e '.[test]'") from exc

    reward = pl.col("reward").cast(pl.Float64)
    x = reward - reward.mean().over("run_id", "step", "prompt_id") + reward.mean().over("run_id", "step")
    frame = (
        pl.scan_parquet(files)
        .select("run_id", "step", "prompt_id", "reward")
        .filter(pl.col("reward").is_finite())
        .select("run_id", "step", x.alias("x"))
        .collect()
    )
    lo, hi = frame["x"].min(), frame["x"].max()
    width = (hi - lo) / bins if hi > lo else 1.0
    binned = ((pl.col("x") - lo) / width).floor().clip(upper_bound=bins - 1).cast(pl.Int64)
    counts = frame.group_by("run_id", "step", binned.alias("bin")).agg(pl.len().alias("count"))
    total = pl.col("count").sum().over("run_id", "step")
    return counts.with_columns(density=pl.col("count") / (total * width)).to_pandas()


def pyarrow_write_seconds(
    directory: Path, *, steps: int, prompts: int, samples: int, tokens: int, seed: int
) -> float:
    """Seconds spent in a bare ``pyarrow.parquet.write_table`` (default options) of the same synthetic
    rows, one file per step: the write baseline. The rows are drawn again from the same seed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.store.synthetic import synthetic_step

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_s = 0.0
    for step in range(steps):
        table = pa.table(synthetic_step(rng, "bench-run", step, steps, prompts, samples, tokens))
        start = time.perf_counter()
        pq.write_table(table, directory / f"step-{step:06d}.parquet")
        write_s += time.perf_counter() - start
    return write_s


def _mismatch(ours, other) -> int:
    """0 when two density tables count the same samples in the same non-empty bins."""
    return abs(len(ours) - len(other)) + abs(int(ours["count"].sum()) - int(other["count"].sum()))


def run_benchmark(
    root: Path, *, rollouts: int, steps: int, samples: int, tokens: int, bins: int, repeats: int, seed: int
) -> dict[str, Any]:
    from tqdm import tqdm

    from engine.runs.layout import ROLLOUTS_DIR
    from engine.store import (
        failure_counts,
        prompt_drilldown,
        reward_norm_density,
        top_variance_prompts,
    )
    from engine.store.synthetic import write_synthetic_run

    # The most steps (up to --steps) that split the prompt groups evenly, so every step is the same size.
    groups = rollouts // samples
    steps = next(d for d in range(min(steps, groups), 0, -1) if groups % d == 0)
    prompts = groups // steps
    run_dir = root / "bench-run"
    with tqdm(total=steps, desc="writing synthetic store", unit="step", file=sys.stderr) as bar:
        write_s = write_synthetic_run(
            run_dir,
            steps=steps,
            prompts=prompts,
            samples=samples,
            tokens=tokens,
            seed=seed,
            overwrite=True,
            on_step=lambda _: bar.update(),
        )
    n_rows = steps * prompts * samples
    log.info("wrote %d rollouts in %.1f s of write time", n_rows, write_s)

    density_ms, density = _median_ms(lambda: reward_norm_density(run_dir, "reward", True, bins), repeats)
    top_ms, top = _median_ms(lambda: top_variance_prompts(run_dir, limit=50), repeats)
    failure_ms, _ = _median_ms(lambda: failure_counts(run_dir), repeats)
    prompt_id, run_id = top.loc[0, "prompt_id"], top.loc[0, "run_id"]
    drill_ms, drill = _median_ms(lambda: prompt_drilldown(run_dir, prompt_id, run_id=run_id), repeats)
    files = sorted((run_dir / ROLLOUTS_DIR).glob("step-*.parquet"))
    pandas_ms, baseline = _median_ms(lambda: pandas_reward_norm_density(files, bins), repeats)
    polars_ms, peer = _median_ms(lambda: polars_reward_norm_density(files, bins), repeats)
    arrow_dir = root / "pyarrow-baseline"
    pyarrow_s = pyarrow_write_seconds(
        arrow_dir, steps=steps, prompts=prompts, samples=samples, tokens=tokens, seed=seed
    )
    shutil.rmtree(arrow_dir, ignore_errors=True)

    # Same answer or the comparison means nothing (float rounding may move a sample at a bin edge).
    duck = density[density["count"] > 0]
    mismatch = _mismatch(duck, baseline)
    return {
        "protocol": "store-1m",
        "rollouts": n_rows,
        "steps": steps,
        "tokens": tokens,
        "write_rows_per_s": round(n_rows / write_s),
        "reward_norm_density_ms": round(density_ms, 1),
        "top_variance_prompts_ms": round(top_ms, 1),
        "failure_counts_ms": round(failure_ms, 1),
        "prompt_drilldown_ms": round(drill_ms, 1),
        "pandas_reward_norm_ms": round(pandas_ms, 1),
        "speedup_vs_pandas": round(pandas_ms / density_ms, 2),
        "pandas_matches": mismatch == 0 and len(drill) == steps * samples,
        "polars_reward_norm_ms": round(polars_ms, 1),
        "speedup_vs_polars": round(polars_ms / density_ms, 2),
        "polars_matches": _mismatch(duck, peer) == 0,
        "pyarrow_write_rows_per_s": round(n_rows / pyarrow_s),
        "write_vs_pyarrow": round(pyarrow_s / write_s, 2),
        "store_mb": round(sum(f.stat().st_size for f in files) / 2**20, 1),
    }


def main(args: argparse.Namespace) -> int:
    if args.rollouts < args.samples or args.repeats < 1:
        raise ConfigError(f"--rollouts must be >= --samples ({args.samples}) and --repeats >= 1")
    root = args.keep or Path(tempfile.mkdtemp(prefix="store-bench-"))
    try:
        result = run_benchmark(
            root, **options(args, "rollouts", "steps", "samples", "tokens", "bins", "repeats", "seed")
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
