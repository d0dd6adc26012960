"""PPO for a LoRA policy, read in the order of the algorithm (as CleanRL's ``ppo.py``):

1. :mod:`~engine.ppo.rollout`     sample responses; old log-probs, values and signals from that pass
2. :func:`engine.reward.score_responses`  RM score (+ gold judge) of each response (shared with the lab)
3. :mod:`~engine.ppo.rewards`     score processing, per-token KL to the reference, KL-shaped rewards
4. :mod:`~engine.ppo.advantages`  GAE, explained variance
5. :mod:`~engine.ppo.losses`      clipped policy and value losses
6. :mod:`~engine.ppo.update`      epochs over shuffled minibatches, one combined loss, gradient clip

The critic-free group methods (``--algorithm grpo | rloo``) share phases 1-3 and 5-6 and replace 4:
:mod:`~engine.ppo.group_advantages` (each response against the other samples of its prompt, no value
head); their update is :func:`~engine.ppo.update.group_update` (TRL's loss types, a k3 KL loss term).

:mod:`~engine.ppo.trainer` sequences them once per iteration; :mod:`~engine.ppo.metrics` turns an
iteration into metrics and store rows; :mod:`~engine.ppo.checkpoints` saves and lists checkpoints;
:mod:`~engine.ppo.build` builds a trainer from a config; :mod:`~engine.ppo.job` is the body of a job
process; :mod:`~engine.ppo.config` is the run configuration and its command-line codec.

Shapes: B sequences, P prompt tokens (left-padded), T response tokens (right-padded after EOS),
V vocabulary, H hidden size. ``response_mask`` is True on real response tokens (EOS included).

Implementation details follow "The N Implementation Details of RLHF with PPO" (Huang et al. 2024)
and TRL's PPO trainer, with two deliberate choices:

- log-probs for the ratio and for the KL are computed from the *same* temperature-scaled logits the
  tokens were sampled from (``log softmax(z / T)``), for the policy and for the reference alike;
- the critic is a scalar head on the policy's own last hidden state (shared backbone): the rollout's
  values come out of the sampling pass and the update needs one forward/backward per minibatch, not
  two (a separate critic network or adapter doubles the backbone work of the update).

Speed-ups that compute the same function faster (merged-LoRA sampling, bf16 frozen matmuls, fused
GELU) live in the model layer, :mod:`engine.models.precision`.
"""
