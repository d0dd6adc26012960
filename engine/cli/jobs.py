"""``python -m engine jobs list|status|stop|eval``: background jobs of the runs directory."""

from __future__ import annotations

import argparse
import json

from engine.config import ConfigError
from engine.ppo.launch import stop
from engine.runs import RUN_FILE, effective_state, list_runs, read_status, run_dir_of

RUNS_DIR_HELP = "runs directory (default: WORKBENCH_RUNS_DIR or ./runs)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jobs", help="list, inspect and stop PPO jobs")
    parser.add_argument("--runs-dir", default=None, help=RUNS_DIR_HELP)
    # --runs-dir is accepted after the action too (``jobs stop X --runs-dir D``); SUPPRESS keeps an
    # action's unset option from overwriting the value given before the action.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--runs-dir", default=argparse.SUPPRESS, help=RUNS_DIR_HELP)
    sub = parser.add_subparsers(dest="jobs_command", metavar="<action>", required=True)
    p = sub.add_parser("list", parents=[after], help="runs, newest first, with their state")
    p.set_defaults(func=_cli_list)
    p = sub.add_parser(
        "status", parents=[after], help="a run's status.json (state corrected for killed jobs)"
    )
    p.add_argument("run_id")
    p.set_defaults(func=_cli_status)
    p = sub.add_parser(
        "stop", parents=[after], help="ask a running job to stop after its current step (SIGTERM)"
    )
    p.add_argument("run_id")
    p.set_defaults(func=_cli_stop)
    p = sub.add_parser(
        "eval",
        parents=[after],
        help="log-prob accuracy of a run's checkpoints on the preference test set (evals/logprob_accuracy.parquet) "
        "and on the run's labels made in the app when it has any (evals/label_accuracy.parquet; lines end in 'labels')",
    )
    p.add_argument("run_id")
    p.add_argument(
        "--watch", action="store_true", help="keep evaluating new checkpoints while the run's job is live"
    )
    p.set_defaults(func=_cli_eval)


def _cli_list(args: argparse.Namespace) -> int:
    for r in list_runs(args.runs_dir):
        steps = f"{r.step}/{r.steps}" if r.steps else str(r.step)
        print(f"{r.run_id}\t{r.kind}\t{r.state}\t{steps}\t{r.created_at}\t{r.message}")
    return 0


def _cli_status(args: argparse.Namespace) -> int:
    run_dir = run_dir_of(args.run_id, args.runs_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"no run {args.run_id} in {run_dir.parent}")
    status = read_status(run_dir) or {}
    print(json.dumps({**status, "state": effective_state(run_dir, status)}, indent=2))
    return 0


def _cli_eval(args: argparse.Namespace) -> int:
    from engine.ppo.logprob_eval import evaluate_labels, evaluate_run, has_test_set, watch_run

    run_dir = run_dir_of(args.run_id, args.runs_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"no run {args.run_id} in {run_dir.parent}")
    if args.watch:
        watch_run(run_dir)
    else:
        labelled = evaluate_labels(run_dir)  # the run's labels made in the app, when it has any
        if has_test_set(run_dir) or not labelled:  # without either, evaluate_run says what is missing
            for row in evaluate_run(run_dir):
                print(f"{row['checkpoint']}\t{row['accuracy']:.4f}\t{row['n_pairs']}")
        for row in labelled:
            print(f"{row['checkpoint']}\t{row['accuracy']:.4f}\t{row['n_pairs']}\tlabels")
    return 0


def _cli_stop(args: argparse.Namespace) -> int:
    if not stop(args.run_id, args.runs_dir):
        raise ConfigError(f"run {args.run_id} has no live job to stop")
    print(f"sent SIGTERM to {args.run_id}")
    return 0
