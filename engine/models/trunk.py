"""A reward model's lower layers that are the policy's base, computed once for both.

An RM built on the policy's base model (the real world's adapter RM: LoRA on the top 4 of SmolLM2's
30 layers; a sequence classifier from the base's own weights) runs its lower layers over the same
token ids, with the same weights, as the reference pass (:func:`engine.ppo.rollout.reference_pass`)
and the sampling lab's decode (:meth:`engine.models.decoders.LlamaDecoder.keep_layer_output`) do.
Those keep the output of the shared layers, and the RM runs only what is above them
(:meth:`SharedTrunk.score`): on SmolLM2's real RM, 4 of its 30 layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.models.loading import backbone_and_head

ScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(hidden states after the shared layers (B, L, H), ids (B, L), mask (B, L)) -> scores (B,)."""


class SharedTrunk:
    """The lower ``layers`` layers of a reward model that are the policy's base (:func:`shared_trunk`,
    which checks the weights once; an RM weight changed in place since, as an RM refresh trains it,
    ends the sharing: :meth:`intact`)."""

    def __init__(self, layers: int, score: ScoreFn, compared: list[torch.Tensor]):
        self.layers = layers
        self._score = score
        self._compared = compared
        self._versions = [t._version for t in compared]

    def intact(self) -> bool:
        """Whether each of the RM's compared weights is as it was when compared (no in-place update)."""
        return all(t._version == v for t, v in zip(self._compared, self._versions, strict=True))

    @torch.no_grad()
    def score(
        self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """RM scores (B,) of ``input_ids`` / ``attention_mask`` (B, L) from the output of the shared
        :attr:`layers` over them (B, L, H)."""
        return self._score(hidden, input_ids, attention_mask.bool()).float()


def shared_trunk(reward: nn.Module, policy: nn.Module, *, tie: bool = False) -> SharedTrunk | None:
    """The RM's lower layers that equal the policy's base (embeddings and each decoder layer's weights,
    LoRA's own left out, compared value for value), or None when not all of them do, the RM has no
    trunk to share (:func:`_rm_trunk`), or the two live on different devices. The policy's base is
    frozen (``merged_lora`` restores it bit for bit): only the RM's weights are watched.

    ``tie``: the RM's shared weights become the policy's own tensors and the RM's copies are freed (on
    SmolLM2 the real RM's embeddings and 26 lower layers, about 480 MB; all of a sequence classifier's
    body). Only for an RM that nothing in the process trains (PPO without RM refresh: a refresh trains
    every RM weight in place, which would then be the policy's base). A tied trunk is always intact:
    its weights are the frozen base, which ``merged_lora`` changes only while sampling and restores bit
    for bit.
    """
    found = _rm_trunk(reward)
    body, _ = backbone_and_head(policy)
    if found is None or not _is_llama_body(body) or not 1 <= found[1] <= len(body.layers):
        return None
    rm_body, depth, score = found
    parts = [
        (rm_body.embed_tokens, body.embed_tokens),
        *zip(rm_body.layers[:depth], body.layers, strict=False),
    ]
    compared: list[torch.Tensor] = []
    ties: list[tuple[nn.Module, str, nn.Parameter]] = []  # (an RM module, its weight's name, the policy's)
    for rm_part, part in parts:
        mine, theirs = _base_weights(rm_part), _base_weights(part)
        if mine.keys() != theirs.keys() or not all(
            mine[k][1].device == theirs[k][1].device and torch.equal(mine[k][1], theirs[k][1]) for k in mine
        ):
            return None
        compared += [weight for _, weight in mine.values()]
        for key, (name, _) in mine.items():
            owner, _, attribute = name.rpartition(".")
            ties.append((rm_part.get_submodule(owner), attribute, theirs[key][1]))
    if not tie:
        return SharedTrunk(depth, score, compared)
    for module, attribute, weight in ties:
        setattr(module, attribute, weight)
    _copy_out_of_the_file(reward, shared={id(weight) for _, _, weight in ties})
    return SharedTrunk(depth, score, compared=[])


def _copy_out_of_the_file(model: nn.Module, shared: set[int]) -> None:
    """Copy each of ``model``'s CPU tensors but the ``shared`` into memory of its own.

    transformers maps a safetensors file into memory and every weight it loads is a view of that
    mapping; the pages the comparison above read stay resident as long as any weight still views the
    file. Once the RM's other tensors are copies, the mapping and all its pages go (SmolLM2's
    sequence-classifier RM: 1490 -> 977 MB resident)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if id(tensor) not in shared and tensor.device.type == "cpu":
                tensor.data = tensor.data.clone()


def _base_weights(module: nn.Module) -> dict[str, tuple[str, nn.Parameter]]:
    """A module's weights other than LoRA's, by their name without peft's ``.base_layer``: (the name
    as it is, the weight)."""
    return {
        name.replace(".base_layer", ""): (name, p)
        for name, p in module.named_parameters()
        if "lora_" not in name
    }


def _is_llama_body(body: nn.Module | None) -> bool:
    """A Llama-architecture body: embeddings, decoder layers, rotary positions, a final norm."""
    return body is not None and all(
        hasattr(body, n) for n in ("layers", "rotary_emb", "norm", "embed_tokens")
    )


def _rm_trunk(reward: nn.Module) -> tuple[nn.Module, int, ScoreFn] | None:
    """(body, shared layers, scores from their output) of the two RM kinds built on a base's body:
    the adapter RM (``engine.reward.AdapterRewardModel``: its ``first_top`` frozen layers, then
    ``upper``) and a sequence classifier (``engine.reward.SequenceClassifierRM``: every layer, then the
    norm and the score head, pooled as transformers pools); None for any other RM."""
    if hasattr(reward, "upper") and hasattr(reward, "first_top") and _is_llama_body(reward.body):
        return reward.body, reward.first_top, lambda hidden, _ids, mask: reward.upper(hidden, mask)
    classifier = getattr(reward, "model", None)
    body = getattr(classifier, getattr(classifier, "base_model_prefix", ""), None)
    if not _is_llama_body(body) or not isinstance(getattr(classifier, "score", None), nn.Linear):
        return None

    def score(hidden: torch.Tensor, input_ids: torch.Tensor, _mask: torch.Tensor) -> torch.Tensor:
        # GenericForSequenceClassification: the rightmost token that is not the pad token (any padding side)
        pad = classifier.config.pad_token_id
        columns = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (
            (columns * (input_ids != pad).int()).argmax(-1)
            if pad is not None
            else columns[-1:].expand(len(input_ids))
        )
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return classifier.score(body.norm(hidden[rows, last]))[:, 0]  # (B,)

    return body, len(body.layers), score
