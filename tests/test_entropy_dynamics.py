"""Entropy dynamics: every formula against a naive per-token float64 loop or known coefficients."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.analysis.entropy_dynamics import (
    correlation,
    covariance_terms,
    entropy_changes,
    entropy_distribution,
    entropy_report,
    fit_entropy_reward_law,
    fit_gold_sqrt_kl,
    fit_steps,
    top_covariance_tokens,
    top_entropy_tokens,
)
from engine.config import ConfigError
from engine.store import (
    ENTROPY_AFTER_UPDATE,
    ENTROPY_BEFORE_UPDATE,
    RunWriter,
    entropy_step_stats,
    step_tokens,
)

N_STEPS = 20  # at fraction 0.5 the law fits 10 steps: the fits' minimum
WORDS = ["the", "cat", "sat", "on", "a", "mat", "<eos>"]


def f32(values) -> list[float]:
    """Values as the store keeps them (float32), back as Python floats."""
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


def make_rows(rng: np.random.Generator, step: int, *, advantage: bool, gold: bool) -> list[dict]:
    rows = []
    for p in range(3):
        for s in range(2):
            n = int(rng.integers(2, 7))  # ragged lengths
            entropy = rng.gamma(1.0, 0.8 / (1 + step), n)
            entropy[rng.random(n) < 0.3] = 1e-4  # near-zero tokens
            row = {
                "prompt_id": f"q{p}",
                "prompt_family": "fam",
                "sample_idx": s,
                "prompt": f"prompt {p}",
                "tokens": [WORDS[int(i)] for i in rng.integers(0, len(WORDS), n)],
                "logprob": f32(-rng.gamma(1.0, 1.0, n)),
                "entropy": f32(entropy),
                "reward": float(np.float32(rng.normal(step * 0.3, 1.0))),
                "gold": float(np.float32(rng.normal(step * 0.2, 1.0))) if gold else None,
                "kl": float(np.float32(0.05 * step**1.5 + rng.uniform(0, 0.01))),
                "has_eos": True,
            }
            row["response"] = " ".join(row["tokens"])
            if advantage:  # covariance with the log-prob that changes sign over the steps
                lp = np.array(row["logprob"])
                row["advantage"] = f32(rng.normal(0, 1, n) + (step % 3 - 0.8) * (lp + 1))
            rows.append(row)
    return rows


def build_run(
    path: Path, *, advantage: bool = True, gold: bool = True, measured: bool = True, n_steps: int = N_STEPS
) -> dict:
    """A small run of ``n_steps`` steps; returns {step: rows} as written (float32 values)."""
    writer = RunWriter.create(path, kind="ppo", config={}, seed=0, source="test")
    rng = np.random.default_rng(11)
    written = {}
    for step in range(n_steps):
        rows = make_rows(rng, step, advantage=advantage, gold=gold)
        writer.write_rollouts(step, rows)
        metrics = {"objective/kl": 0.1 * step}
        if measured:
            metrics[ENTROPY_BEFORE_UPDATE] = 1.0 - 0.1 * step
            metrics[ENTROPY_AFTER_UPDATE] = 1.0 - 0.1 * step - 0.02 * (step + 1)
        writer.write_metrics(step, metrics)
        written[step] = rows
    return written


def naive_cov(rows: list[dict]) -> float:
    pairs = [(lp, a) for r in rows for lp, a in zip(r["logprob"], r["advantage"], strict=True)]
    mean_lp = sum(lp for lp, _ in pairs) / len(pairs)
    mean_a = sum(a for _, a in pairs) / len(pairs)
    return sum((lp - mean_lp) * (a - mean_a) for lp, a in pairs) / len(pairs)


def naive_percentile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics at rank q/100 * (n - 1)."""
    s = sorted(values)
    rank = q / 100 * (len(s) - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    return s[lo] + (s[hi] - s[lo]) * (rank - lo)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("runs") / "ent"
    return path, build_run(path)


def test_step_stats_match_naive_loops(run) -> None:
    path, written = run
    stats = entropy_step_stats(path).set_index("step")
    for step, rows in written.items():
        got = stats.loc[step]
        assert got["cov"] == pytest.approx(naive_cov(rows), rel=1e-9, abs=1e-12)
        entropies = [e for r in rows for e in r["entropy"]]
        assert got["n_entropy_tokens"] == len(entropies)
        assert got["mean_token_entropy"] == pytest.approx(sum(entropies) / len(entropies), rel=1e-9)
        assert got["share_near_zero"] == pytest.approx(sum(e < 0.01 for e in entropies) / len(entropies))
        for q in (50, 80, 90, 99):
            assert got[f"p{q}"] == pytest.approx(naive_percentile(entropies, q), rel=1e-9)
        assert got["mean_reward"] == pytest.approx(sum(r["reward"] for r in rows) / len(rows), rel=1e-9)
        assert got["mean_kl"] == pytest.approx(sum(r["kl"] for r in rows) / len(rows), rel=1e-6)


def test_step_tokens_one_row_per_token(run) -> None:
    path, written = run
    tokens = step_tokens(path, 2)
    rows = sorted(written[2], key=lambda r: (r["prompt_id"], r["sample_idx"]))
    assert len(tokens) == sum(len(r["tokens"]) for r in rows)
    for (row_idx, position), tok in tokens.set_index(["row", "position"]).iterrows():
        source = rows[row_idx]
        assert tok["prompt_id"] == source["prompt_id"] and tok["sample_idx"] == source["sample_idx"]
        assert tok["token"] == source["tokens"][position]
        assert tok["logprob"] == pytest.approx(source["logprob"][position])
        assert tok["advantage"] == pytest.approx(source["advantage"][position])


def test_covariance_terms_and_top_tokens(run) -> None:
    path, written = run
    step = max(written, key=lambda s: naive_cov(written[s]))
    assert naive_cov(written[step]) > 0
    tokens = step_tokens(path, step)
    terms = covariance_terms(tokens["logprob"].to_numpy(), tokens["advantage"].to_numpy())
    lp, adv = tokens["logprob"].tolist(), tokens["advantage"].tolist()
    mean_lp, mean_a = sum(lp) / len(lp), sum(adv) / len(adv)
    for got, x, a in zip(terms, lp, adv, strict=True):
        assert got == pytest.approx((x - mean_lp) * (a - mean_a), abs=1e-12)
    top = top_covariance_tokens(tokens, k=4, entropy_change=-0.5)
    assert top["cov"] == pytest.approx(naive_cov(written[step]), rel=1e-9)
    naive_top = sorted(((x - mean_lp) * (a - mean_a) for x, a in zip(lp, adv, strict=True)), reverse=True)[:4]
    assert [t["term"] for t in top["tokens"]] == pytest.approx(naive_top)
    total = sum((x - mean_lp) * (a - mean_a) for x, a in zip(lp, adv, strict=True))
    assert top["ratio_to_net"] == pytest.approx(sum(naive_top) / total)
    assert top["entropy_drop_attributed"] == pytest.approx(top["ratio_to_net"] * 0.5)
    positive = sum(max(0.0, (x - mean_lp) * (a - mean_a)) for x, a in zip(lp, adv, strict=True))
    assert top["share"] == pytest.approx(sum(max(0.0, t) for t in naive_top) / positive)
    assert 0 <= top["share"] <= 1
    first = top["tokens"][0]
    match = tokens[(tokens["row"] == first["row"]) & (tokens["position"] == first["position"])]
    assert match["token"].iloc[0] == first["token"]


def test_top_covariance_tokens_without_advantage_says_so() -> None:
    import pandas as pd

    tokens = pd.DataFrame(
        {"row": [0], "prompt_id": ["q"], "sample_idx": [0], "position": [0], "token": ["a"],
         "logprob": [-1.0], "advantage": [np.nan], "entropy": [0.5]}
    )  # fmt: skip
    out = top_covariance_tokens(tokens)
    assert out["cov"] is None and "advantage" in out["reason"]


def test_law_recovers_known_coefficients() -> None:
    a, b = 0.8, 3.0
    entropy = np.linspace(1.5, 0.3, 20)
    reward = -a * np.exp(entropy) + b
    law = fit_entropy_reward_law(entropy, reward, 0.3, min_steps=2)
    assert law["fit_steps"] == 6  # ceil(0.3 * 20)
    assert law["a"] == pytest.approx(a) and law["b"] == pytest.approx(b)
    assert law["ceiling"] == pytest.approx(b - a)
    assert law["rmse_later"] == pytest.approx(0.0, abs=1e-9)
    assert law["final_predicted"] == pytest.approx(law["final_measured"])


def test_law_least_squares_and_rmse_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    entropy = np.linspace(2.0, 0.5, 10)
    reward = -0.5 * np.exp(entropy) + 2 + rng.normal(0, 0.1, 10)
    law = fit_entropy_reward_law(list(entropy), list(reward), 0.5, min_steps=2)
    n = 5
    xs, ys = [math.exp(h) for h in entropy[:n]], list(reward[:n])
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    assert law["a"] == pytest.approx(-slope) and law["b"] == pytest.approx(my - slope * mx)
    later = [
        (-law["a"] * math.exp(h) + law["b"] - r) ** 2 for h, r in zip(entropy[n:], reward[n:], strict=True)
    ]
    assert law["rmse_later"] == pytest.approx(math.sqrt(sum(later) / len(later)))


def test_law_degenerate_inputs_are_reported() -> None:
    assert fit_entropy_reward_law([1.0], [2.0])["reason"]
    assert fit_entropy_reward_law([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], 1.0)["reason"]
    assert fit_entropy_reward_law([1.0, None, 0.5], [1.0, 2.0, None], 1.0)["reason"]  # one usable step
    with pytest.raises(ConfigError, match="fit fraction"):
        fit_steps(10, 0.0)
    with pytest.raises(ConfigError, match="fit fraction"):
        fit_steps(10, 1.5)


def test_gold_sqrt_kl_recovers_known_coefficients() -> None:
    alpha, beta, offset = 1.2, 0.8, -0.4
    kl = np.linspace(0.0, 9.0, 25)
    d = np.sqrt(kl)
    gold = offset + np.where(d > 0, d * (alpha - beta * np.log(np.where(d > 0, d, 1))), 0.0)
    fit = fit_gold_sqrt_kl(kl, gold)
    assert fit["alpha"] == pytest.approx(alpha) and fit["beta"] == pytest.approx(beta)
    d_peak = math.exp(alpha / beta - 1)
    assert fit["d_peak"] == pytest.approx(d_peak) and fit["kl_peak"] == pytest.approx(d_peak**2)
    assert fit["gold_peak"] == pytest.approx(offset + d_peak * (alpha - beta * math.log(d_peak)))
    assert fit["position"] == "past the peak" and fit["d_now"] == pytest.approx(3.0)
    rising = fit_gold_sqrt_kl(kl, offset + d * 0.5)  # linear in d: beta ~ 0, no peak
    assert rising["d_peak"] is None and rising["reason"]
    assert fit_gold_sqrt_kl(kl, [None] * len(kl)) is None


def test_entropy_changes_and_correlation() -> None:
    h = np.array([1.0, 0.8, 0.7, 0.65])
    change, source = entropy_changes(h)
    assert source == "next_step"
    assert change[:3] == pytest.approx([-0.2, -0.1, -0.05]) and math.isnan(change[3])
    measured, source = entropy_changes(
        h, np.array([1.0, 0.9, np.nan, 0.7]), np.array([0.9, 0.85, np.nan, 0.6])
    )
    assert source == "measured" and measured[[0, 1, 3]] == pytest.approx([-0.1, -0.05, -0.1])
    x, y = [1.0, 2.0, None, 4.0, 3.0], [2.0, 4.5, 1.0, 7.0, 7.0]
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if a is not None]
    mx, my = sum(a for a, _ in pairs) / 4, sum(b for _, b in pairs) / 4
    sxy = sum((a - mx) * (b - my) for a, b in pairs)
    naive = sxy / math.sqrt(sum((a - mx) ** 2 for a, _ in pairs) * sum((b - my) ** 2 for _, b in pairs))
    assert correlation(x, y) == pytest.approx(naive)
    assert correlation([1.0, 2.0], [1.0, 2.0]) is None


def test_entropy_distribution_and_top_entropy(run) -> None:
    path, written = run
    tokens = step_tokens(path, 0)
    dist = entropy_distribution(tokens["entropy"].to_numpy())
    values = tokens["entropy"].tolist()
    assert dist["share_near_zero"] == pytest.approx(sum(v < 0.01 for v in values) / len(values))
    assert dist["p80"] == pytest.approx(naive_percentile(values, 80))
    top = top_entropy_tokens(tokens, 3)
    assert [t["entropy"] for t in top] == pytest.approx(sorted(values, reverse=True)[:3])
    assert entropy_distribution(np.array([]))["share_near_zero"] is None


def test_report_contract(run) -> None:
    path, written = run
    report = entropy_report(path, 0.5)
    json.dumps(report)  # JSON-ready
    assert [s["step"] for s in report["per_step"]] == list(range(N_STEPS))
    assert set(report["per_step"][0]) >= {"step", "cov", "entropy_change", "mean_entropy", "mean_reward"}
    assert report["entropy_change_source"] == "measured"
    covs = [naive_cov(written[s]) for s in range(N_STEPS)]
    assert [s["cov"] for s in report["per_step"]] == pytest.approx(covs)
    changes = [-0.02 * (s + 1) for s in range(N_STEPS)]
    assert [s["entropy_change"] for s in report["per_step"]] == pytest.approx(changes)
    assert report["cov_entropy_corr"] == pytest.approx(correlation(covs, changes))
    assert set(report["law"]) >= {
        "a",
        "b",
        "ceiling",
        "fit_steps",
        "rmse_later",
        "final_measured",
        "final_predicted",
    }
    assert report["law"]["fit_steps"] == N_STEPS // 2
    assert report["law_gold"]["fit_steps"] == N_STEPS // 2
    assert {"share_near_zero", "p50", "p80", "p90", "p99"} <= set(report["forking"])
    assert report["forking"]["step"] == N_STEPS - 1
    assert report["gold_sqrt_kl"] is not None and report["gold_sqrt_kl"]["n_steps"] == N_STEPS
    assert report["top_cov_tokens"]["step"] == int(np.argmax(covs))


def test_report_without_advantage_or_judge(tmp_path: Path) -> None:
    build_run(tmp_path / "plain", advantage=False, gold=False, measured=False, n_steps=40)
    report = entropy_report(tmp_path / "plain")  # the law fits 12 steps: above the minimum
    json.dumps(report)
    assert all(s["cov"] is None for s in report["per_step"])
    assert "advantage" in report["cov_reason"]
    assert report["cov_entropy_corr"] is None
    assert report["entropy_change_source"] == "next_step"
    assert report["per_step"][-1]["entropy_change"] is None
    assert report["gold_sqrt_kl"] is None and report["law_gold"] is None
    assert report["law"]["a"] is not None
    assert "advantage" in report["top_cov_tokens"]["reason"]


def test_cli_prints_one_json_object(run, capsys) -> None:
    from engine.cli import analyse

    path, _ = run
    parser = argparse.ArgumentParser()
    analyse.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["analyse", "entropy", str(path), "--fit-fraction", "0.5", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"per_step", "cov_entropy_corr", "law", "forking", "gold_sqrt_kl"} <= set(out)
    args = parser.parse_args(["analyse", "entropy", str(path)])
    assert args.func(args) == 0
    assert "ceiling" in capsys.readouterr().out
    for bad in (["--fit-fraction", "0"], ["--step", "99"]):
        args = parser.parse_args(["analyse", "entropy", str(path), *bad])
        with pytest.raises(ConfigError):
            args.func(args)
    args = parser.parse_args(["analyse", "entropy", str(path.parent / "missing")])
    with pytest.raises(ConfigError, match="does not exist"):
        args.func(args)
