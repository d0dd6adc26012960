"""Log-probability accuracy of policy checkpoints on a labelled preference test set.

The seed's third way to watch RM/policy agreement during PPO: the share of labelled pairs where the
policy gives the chosen response a higher log-probability than the rejected one,
``sum_t log pi(chosen_t | prompt, chosen_<t) > sum_t log pi(rejected_t | ...)``.
Results go to ``runs/<id>/evals/logprob_accuracy.parquet`` (one row per checkpoint, ``sft`` = the
starting policy with the adapter disabled). ``python -m engine jobs eval RUN_ID --watch`` runs it
in the background next to a training job, evaluating each checkpoint as it appears.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import ConfigError
from engine.models import reference_mode
from engine.ppo.rollout import policy_forward
from engine.runs import RUN_FILE
from engine.runs.labels import PreferencePair
from engine.runs.layout import eval_file
from engine.sampling import chat_prompts, check_fits_context, encode_prompts, pad_right

log = logging.getLogger(__name__)


@torch.no_grad()
def response_logprobs(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Sum of log-probs (temperature 1) of each response given its prompt: (N,).

    Responses are taken as written: a response that ended itself carries its EOS token in the text
    (the world's preference pairs do), one that was cut off does not.
    """
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(prompts), batch_size):
        batch_prompts = list(prompts[start : start + batch_size])
        batch_responses = list(responses[start : start + batch_size])
        prompt_ids, prompt_mask = encode_prompts(tokenizer, batch_prompts, device)  # (B, P) left-padded
        rows = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in batch_responses]
        response_ids, response_mask = pad_right(rows, tokenizer.pad_token_id)
        response_ids, response_mask = response_ids.to(device), response_mask.to(device)
        worst = int((prompt_mask.sum(-1) + response_mask.sum(-1)).argmax())  # the longest prompt + response
        check_fits_context(model.config, int(prompt_mask[worst].sum()), int(response_mask[worst].sum()))
        sequences = torch.cat([prompt_ids, response_ids], dim=1)  # (B, P + T)
        attention = torch.cat([prompt_mask, response_mask], dim=1)
        logprobs, _, _ = policy_forward(model, sequences, attention, prompt_ids.shape[1], 1.0)  # (B, T)
        out.append(logprobs.masked_fill(~response_mask, 0.0).sum(-1).double().cpu())
    return torch.cat(out)


def logprob_accuracy(
    model: nn.Module, tokenizer: Any, pairs: Sequence[Any], *, batch_size: int = 64
) -> float:
    """Share of pairs (objects with .prompt .chosen .rejected) where logp(chosen) > logp(rejected)."""
    if not pairs:
        raise ConfigError("no preference pairs to evaluate")
    prompts = [p.prompt for p in pairs]
    chosen = response_logprobs(model, tokenizer, prompts, [p.chosen for p in pairs], batch_size=batch_size)
    rejected = response_logprobs(
        model, tokenizer, prompts, [p.rejected for p in pairs], batch_size=batch_size
    )
    return float((chosen > rejected).double().mean())


def evaluate_run(
    run_dir: Path, pairs: Sequence[Any] | None = None, *, device: str | None = None
) -> list[dict]:
    """Evaluate the starting policy and every checkpoint of a run not yet in its eval file; returns new rows."""
    import pandas as pd

    from engine.runs import list_checkpoints
    from engine.store import LOGPROB_ACCURACY

    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    if pairs is None:
        pairs = preference_test_set(config)
    path = eval_file(run_dir, LOGPROB_ACCURACY)
    done = set(pd.read_parquet(path)["checkpoint"]) if path.is_file() else set()
    todo = [("sft", 0, None)] if "sft" not in done else []
    todo += [
        (f"step-{step}", step, ckpt) for step, ckpt in list_checkpoints(run_dir) if f"step-{step}" not in done
    ]
    if not todo:
        return []
    rows = _checkpoint_accuracies(run_dir, config, todo, pairs, device)
    _write(run_dir, LOGPROB_ACCURACY, rows, append=True)
    return rows


def evaluate_labels(
    run_dir: Path, labels_dir: Path | None = None, *, device: str | None = None
) -> list[dict]:
    """Log-prob accuracy of the starting policy and every checkpoint on the run's own labels (made in
    the app, :func:`engine.runs.labels.preference_pairs`; read from ``labels_dir``, default the run's),
    written to ``evals/label_accuracy.parquet`` anew each time (the labels grow); [] without ordered labels."""
    from engine.runs import list_checkpoints
    from engine.runs.labels import preference_pairs, read_labels
    from engine.store import LABEL_ACCURACY

    run_dir = Path(run_dir)
    pairs = preference_pairs(read_labels(labels_dir or run_dir))
    if not pairs:
        return []
    todo = [("sft", 0, None), *((f"step-{step}", step, ckpt) for step, ckpt in list_checkpoints(run_dir))]
    rows = _checkpoint_accuracies(
        run_dir, _run_config(run_dir), todo, pairs, device, "accuracy on the run's labels"
    )
    _write(run_dir, LABEL_ACCURACY, rows, append=False)
    return rows


def has_test_set(run_dir: Path) -> bool:
    """Whether the run has a preference test set of its own (a world's: built-in or real)."""
    return _world_of(_run_config(Path(run_dir))) is not None


def preference_test_set(config: Any) -> Sequence[Any]:
    """The preference test set of a run's world: the built-in world's, or the real world's (pairs of
    SmolLM2's answers to held-out tasks ordered by the checker); ConfigError for a run of other models."""
    world = _world_of(config)
    if world == "world":
        from engine.world import load_world

        return load_world().preference_test
    if world == "real":
        from engine.real_world.world import load_real_world

        return load_real_world().preference_test()
    raise ConfigError(
        "log-prob accuracy needs a world's preference test set (the built-in or the real one), or pairs"
    )


def _world_of(config: Any) -> str | None:
    from engine.ppo.build import REAL_POLICY

    if config.model.uses_world:
        return "world"
    return "real" if config.model.policy.strip() == REAL_POLICY and not config.run.prompts_file else None


def _run_config(run_dir: Path):
    from engine.ppo.config import PPOConfig

    return PPOConfig.from_dict(json.loads((run_dir / RUN_FILE).read_text())["config"])


def _checkpoint_accuracies(
    run_dir: Path,
    config: Any,
    todo: list[tuple[str, int, Path | None]],
    pairs: Sequence[Any],
    device: str | None,
    what: str = "log-prob accuracy",
) -> list[dict]:
    """One row per (checkpoint name, step, adapter folder or None for the starting policy) of ``todo``;
    ``what`` names the measure in the log (the RM accuracy page counts the "log-prob accuracy" lines)."""
    from peft import load_peft_weights, set_peft_model_state_dict

    from engine.models import attach_lora, load_causal_lm
    from engine.ppo.build import resolve_sources

    policy = load_causal_lm(resolve_sources(config).policy, device=device)
    model = attach_lora(policy.model, r=config.model.lora_r, alpha=config.model.lora_alpha).eval()
    # the prompts as PPO sampled them: in the chat template when the run used it (SmolLM2's)
    prompts = chat_prompts(policy.tokenizer, [p.prompt for p in pairs], config.model.chat_template)
    pairs = [PreferencePair(prompt, p.chosen, p.rejected) for prompt, p in zip(prompts, pairs, strict=True)]
    rows = []
    for name, step, ckpt in todo:
        if ckpt is None:
            with reference_mode(model):
                accuracy = logprob_accuracy(model, policy.tokenizer, pairs)
        else:
            set_peft_model_state_dict(model, load_peft_weights(str(ckpt), device=str(policy.device)))
            accuracy = logprob_accuracy(model, policy.tokenizer, pairs)
        rows.append(
            {
                "run_id": run_dir.name,
                "step": step,
                "checkpoint": name,
                "accuracy": accuracy,
                "n_pairs": len(pairs),
            }
        )
        log.info("%s %s: %s %.3f on %d pairs", run_dir.name, name, what, accuracy, len(pairs))
    return rows


def _write(run_dir: Path, name: str, rows: list[dict], *, append: bool) -> None:
    import pyarrow as pa

    from engine.store import LOGPROB_ACCURACY_SCHEMA, write_eval

    write_eval(run_dir, name, pa.Table.from_pylist(rows, schema=LOGPROB_ACCURACY_SCHEMA), append=append)


def watch_run(run_dir: Path, *, poll_seconds: float = 10.0, pairs: Sequence[Any] | None = None) -> None:
    """Evaluate new checkpoints as they appear, until the run's job is no longer live."""
    from engine.runs import is_live

    with_test_set = pairs is not None or has_test_set(run_dir)
    if not with_test_set:
        log.info("%s has no preference test set: its labels are evaluated when its job ends", run_dir.name)
    while True:
        live = is_live(run_dir)
        if with_test_set:
            evaluate_run(run_dir, pairs)
        if not live:
            evaluate_labels(run_dir)  # once, on the final checkpoints: the labels are a second test set
            return
        time.sleep(poll_seconds)
