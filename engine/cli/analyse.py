"""``python -m engine analyse entropy RUN_DIR [--fit-fraction 0.3] --json`` (contract).

Prints one JSON object (``engine.analysis.entropy_dynamics.entropy_report``): ``per_step`` (step,
cov, entropy_change, mean_entropy, mean_reward, ...), ``entropy_change_source``, ``cov_entropy_corr``,
``law`` / ``law_gold``, ``forking``, ``top_cov_tokens`` and ``gold_sqrt_kl`` (null without a judge).
Each fit (``law``'s ceiling and gain, ``gold_sqrt_kl``'s peak, ``cov_entropy_corr``) carries a 90 %
bootstrap interval over steps and is null, with its ``reason``, on fewer than 10 steps.
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


def main_entropy(args: argparse.Namespace) -> int:
    """Run ``entropy_report``; every fit carries its interval and gives no number on too few steps."""
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
