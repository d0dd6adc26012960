"""``python -m engine analyse entropy RUN_DIR [--fit-fraction 0.3] --json`` (contract), and
``python -m engine analyse groups RUN --json`` (contract; :func:`engine.store.group_queries.group_audit`).

Prints one JSON object (``engine.analysis.entropy_dynamics.entropy_report``): ``per_step`` (step,
cov, entropy_change, mean_entropy, mean_reward, ...), ``entropy_change_source``, ``cov_entropy_corr``,
``law`` / ``law_gold``, ``forking``, ``top_cov_tokens`` and ``gold_sqrt_kl`` (null without a judge).
Each fit (``law``'s ceiling and gain, ``gold_sqrt_kl``'s peak, ``cov_entropy_corr``) carries a 90 %
bootstrap interval over steps and is null, with its ``reason``, on fewer than 10 steps.

``python -m engine analyse coverage --policy SOURCE [--policy SOURCE ...] --prompts SET --samples N
[--max-prompts M] [--temperature T] [--seed S] [--out DIR] --json`` (contract): the sampling-space ceiling on the world, or on the real
world with ``--prompts real-train`` / ``real-held-out`` (``engine.world_tools.coverage.measure_coverage``). One JSON object: ``samples_path`` (the Parquet
file, one row per sample), the settings, ``thresholds`` (gold per family that counts as correct),
``policies`` (label -> ``pass_at_k`` {k: value}, ``cover_at_tau`` {tau: share}, ``answer_entropy``,
``token_entropy``, ``n_prompts``, ``n_samples``, ``mean_gold``, temperature, seed, thresholds, source,
run_dir, step) and ``crossings`` (where each later policy's pass@k crosses the first one's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator

from engine.cli import command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = command_group(
        subparsers, "analyse", "analysis", "<analysis>", help="analyses of a run's store (entropy dynamics)"
    )
    entropy = sub.add_parser(
        "entropy",
        help="covariance driver, entropy-reward law and ceiling, forking tokens, gold vs sqrt(KL)",
    )
    entropy.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (runs/<run_id>)")
    entropy.add_argument(
        "--fit-fraction",
        type=float,
        default=0.3,
        help="share of the first steps the entropy-reward law is fitted on (default 0.3)",
    )
    entropy.add_argument(
        "--step", type=int, default=None, help="step whose tokens are listed (default: the largest cov)"
    )
    entropy.add_argument("--top", type=int, default=20, help="tokens listed per table (default 20)")
    entropy.add_argument("--json", action="store_true", help="print one JSON object")
    entropy.set_defaults(func=main_entropy)
    register_groups(sub)
    _register_coverage(sub)


def _register_coverage(sub: argparse._SubParsersAction) -> None:
    coverage = sub.add_parser(
        "coverage",
        help="the sampling-space ceiling: pass@k, Cover@tau and answer entropy of policies on the world",
    )
    coverage.add_argument(
        "--policy",
        action="append",
        required=True,
        metavar="SOURCE",
        help="a world SFT epoch (world:sft-epoch-3), a run's checkpoint (RUN@step-K, RUN@last) or any "
        "model source; repeat to compare",
    )
    coverage.add_argument(
        "--prompts",
        required=True,
        metavar="SET",
        help="ppo (every PPO prompt), sft (SFT-train prompts), eval (held-out SFT-family prompts), "
        "ppo_only, or a prompts file (text, JSONL or Parquet); real-train, real-held-out: the real "
        "world's tasks (policies smollm2 and its runs' checkpoints), scored by their checkers",
    )
    coverage.add_argument("--samples", type=int, required=True, metavar="N", help="samples per prompt")
    coverage.add_argument(
        "--max-prompts",
        type=int,
        default=None,
        metavar="M",
        help="at most M prompts of the set, spread evenly over it (default: all)",
    )
    coverage.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    coverage.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    coverage.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="folder for coverage.parquet (default: evals/ of the first named run of yours)",
    )
    coverage.add_argument(
        "--runs-dir", default=None, help="where RUN ids are looked up first (default WORKBENCH_RUNS_DIR)"
    )
    coverage.add_argument("--json", action="store_true", help="print one JSON object")
    coverage.set_defaults(func=main_coverage)


def main_entropy(args: argparse.Namespace) -> int:
    """Run ``entropy_report``; every fit carries its interval and gives no number on too few steps."""
    from engine.analysis.entropy_dynamics import entropy_report
    from engine.config import ConfigError

    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    report = entropy_report(args.run_dir, args.fit_fraction, token_step=args.step, top_k=args.top)
    return _show(report, args.json, _print_summary)


def _show(report: dict, as_json: bool, summary: Callable[[dict], None]) -> int:
    """Print ``report`` as one JSON object, or its ``summary`` for a person."""
    if as_json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        summary(report)
    return 0


@contextlib.contextmanager
def sample_progress(desc: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar of samples on stderr, made at the first
    sample (so a bad input prints its error line alone) and closed on the way out, error or not."""
    from tqdm.auto import tqdm

    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=desc, unit="sample", file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


def main_coverage(args: argparse.Namespace) -> int:
    from engine.world_tools.coverage import measure_coverage

    with sample_progress("coverage") as progress:
        report = measure_coverage(
            None,  # the set names its world: loaded there
            args.policy,
            args.prompts,
            samples=args.samples,
            temperature=args.temperature,
            seed=args.seed,
            out=args.out,
            runs_root=args.runs_dir,
            max_prompts=args.max_prompts,
            progress=progress,
        )
    return _show(report, args.json, _print_coverage)


def _print_coverage(report: dict) -> None:
    print(
        f"{report['n_prompts']} prompts ({report['prompts']}) x {report['samples_per_prompt']} samples, "
        f"T = {report['temperature']}, seed {report['seed']}; samples in {report['samples_path']}"
    )
    for label, p in report["policies"].items():
        curve = "  ".join(f"pass@{k} {v:.3f}" for k, v in p["pass_at_k"].items())
        cover = "  ".join(f"Cover@{t} {v:.3f}" for t, v in p["cover_at_tau"].items())
        print(f"{label}: {curve}")
        print(
            f"  {cover}  answer entropy {p['answer_entropy']:.3f} nats  "
            f"token entropy {p['token_entropy']:.3f} nats"
        )
        n = report["samples_per_prompt"]
        print(
            "  "
            + "  ".join(
                f"{f} {s['pass_at_k']['1']:.2f}->{s['pass_at_k'][str(n)]:.2f}"
                for f, s in p["by_family"].items()
            )
            + f"  (pass@1->pass@{n} by family)"
        )
    for c in report["crossings"]:
        where = "never cross" if c["k"] is None else f"cross at k = {c['k']}"
        crossing = {f: k for f, k in c["by_family"].items() if k is not None}
        print(f"{c['a']} and {c['b']}: pass@k curves {where}; by family, crossings at {crossing or 'none'}")


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def _print_summary(report: dict) -> None:
    from engine.analysis.uncertainty import interval_text

    print(f"{report['run_dir']}: {report['n_steps']} steps")
    corr = report["cov_entropy_corr"]
    reason = report["cov_reason"] or report.get("cov_entropy_corr_reason")
    print(
        f"corr(cov, entropy change [{report['entropy_change_source']}]) = {_fmt(corr, '.3f')}"
        + (f" ({reason})" if reason else f", {interval_text(report.get('cov_entropy_corr_interval'))}")
    )
    for name in ("law", "law_gold"):
        law = report.get(name)
        if law is None:
            continue
        if law["reason"]:
            print(f"{name}: no ceiling: {law['reason']}")
            continue
        print(
            f"{name}: R = -{law['a']:.4g} exp(H) + {law['b']:.4g} on {law['fit_steps']} steps; "
            f"ceiling {law['ceiling']:.4g} ({interval_text(law['ceiling_interval'])}); room left "
            f"{law['gain']:.4g} ({interval_text(law['gain_interval'])}); final {_fmt(law['final_measured'])} measured vs "
            f"{_fmt(law['final_predicted'])} predicted; later RMSE {_fmt(law['rmse_later'])}"
        )
    forking = report["forking"]
    if forking and not forking["reason"]:
        print(
            f"forking (step {forking['step']}): {forking['share_near_zero']:.1%} of tokens below "
            f"{forking['near_zero_threshold']} nats; p80 {forking['p80']:.3f} nats"
        )
    gold = report["gold_sqrt_kl"]
    if gold is None:
        print("gold vs sqrt(KL): no judge (gold is null)")
    elif gold["d_peak"] is not None:
        print(
            f"gold vs sqrt(KL): peak at d* {gold['d_peak']:.3f} ({interval_text(gold['d_peak_interval'])}; "
            f"KL {gold['kl_peak']:.3f}), gold "
            f"{gold['gold_peak']:.3f}; now d {gold['d_now']:.3f}, {gold['position']}"
        )
    else:
        print(f"gold vs sqrt(KL): {gold['reason']}")


def register_groups(sub: argparse._SubParsersAction) -> None:
    from engine.store.group_queries import DEFAULT_GOLD_THRESHOLD, DEFAULT_MEAN_RANGE

    groups = sub.add_parser(
        "groups",
        help="group-filter audit: zero-std groups, what the std / mean / binary filters would drop, "
        "phantom-advantage groups",
    )
    groups.add_argument("run", metavar="RUN", help="a run id (in --runs-dir) or a run directory")
    groups.add_argument("--runs-dir", default=None, help="where run ids are looked up (default: ./runs)")
    groups.add_argument(
        "--mean-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=list(DEFAULT_MEAN_RANGE),
        help="the mean filter keeps groups whose mean reward is strictly inside (LOW, HIGH) (default 0 1)",
    )
    groups.add_argument(
        "--gold-threshold",
        type=float,
        default=DEFAULT_GOLD_THRESHOLD,
        help="a sample passes when its gold score is >= this (default 0.5; the world's gold is in [0, 1])",
    )
    groups.add_argument("--top", type=int, default=None, help="phantom groups listed (default: all)")
    groups.add_argument("--json", action="store_true", help="print one JSON object")
    groups.set_defaults(func=main_groups)


def main_groups(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from engine.importers.signals import run_dir_of
    from engine.store.group_queries import group_audit

    if args.top is not None and args.top < 0:
        raise ConfigError(f"--top must be >= 0, got {args.top}")
    run_dir = run_dir_of(args.run, args.runs_dir)
    report = {
        "run_dir": str(run_dir),
        **group_audit(run_dir, tuple(args.mean_range), args.gold_threshold, args.top),
    }
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
        return 0
    overall = report["overall"]
    if overall is None:
        print(f"{run_dir}: no rollouts")
        return 0
    gate = "n/a (no gold)" if overall["binary_gate_drop"] is None else f"{overall['binary_gate_drop']:.1%}"
    print(
        f"{run_dir}: {overall['n_groups']} groups; zero std {overall['frac_zero_std']:.1%} (the std filter's "
        f"drop); mean filter drops {overall['mean_filter_drop']:.1%}; binary gate drops {gate}; "
        f"phantom-advantage groups: {_fmt(overall['n_phantom'], 'd')}"
    )
    return 0
