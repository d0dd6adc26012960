"""``python -m engine analyse entropy RUN_DIR [--fit-fraction 0.3] --json`` (contract), and
``python -m engine analyse groups RUN --json`` (contract; :func:`engine.store.group_queries.group_audit`).

Prints one JSON object (``engine.analysis.entropy_dynamics.entropy_report``): ``per_step`` (step,
cov, entropy_change, mean_entropy, mean_reward, ...), ``entropy_change_source``, ``cov_entropy_corr``,
``law`` / ``law_gold``, ``forking``, ``top_cov_tokens`` and ``gold_sqrt_kl`` (null without a judge).
"""

from __future__ import annotations

import argparse
import json
import sys

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


def main_entropy(args: argparse.Namespace) -> int:
    from engine.analysis.entropy_dynamics import entropy_report
    from engine.config import ConfigError

    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    report = entropy_report(args.run_dir, args.fit_fraction, token_step=args.step, top_k=args.top)
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
        return 0
    _print_summary(report)
    return 0


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def _print_summary(report: dict) -> None:
    print(f"{report['run_dir']}: {report['n_steps']} steps")
    corr = report["cov_entropy_corr"]
    reason = f" ({report['cov_reason']})" if report["cov_reason"] else ""
    print(f"corr(cov, entropy change [{report['entropy_change_source']}]) = {_fmt(corr, '.3f')}{reason}")
    for name in ("law", "law_gold"):
        law = report.get(name)
        if law is None:
            continue
        if law["reason"]:
            print(f"{name}: {law['reason']}")
            continue
        print(
            f"{name}: R = -{law['a']:.4g} exp(H) + {law['b']:.4g} on {law['fit_steps']} steps; "
            f"ceiling {law['ceiling']:.4g}; final {_fmt(law['final_measured'])} measured vs "
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
            f"gold vs sqrt(KL): peak at d* {gold['d_peak']:.3f} (KL {gold['kl_peak']:.3f}), gold "
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
