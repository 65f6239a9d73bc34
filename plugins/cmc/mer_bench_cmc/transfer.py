"""Moving stage-1 unimodal weights into the stage-2 CMC network, with the reference's key mapping."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mer_bench_cmc.encoders import MODALITIES

HEAD_PREFIXES = {"proj1": "proj1s", "proj2": "proj2s", "out_layer": "out_layers"}


def stage2_key(key: str, expert: int) -> str:
    """A stage-1 key as stage 2 names it: the head (proj1, proj2, out_layer) of modality i becomes expert i
    (proj1s.i, proj2s.i, out_layers.i); encoder keys (norm_*, proj_*, encoder_*, text_model.*) keep their name."""
    head, _, rest = key.partition(".")
    if head in HEAD_PREFIXES:
        return f"{HEAD_PREFIXES[head]}.{expert}.{rest}"
    return key


def transferred_state(target: Mapping[str, torch.Tensor],
                      sources: Mapping[str, Mapping[str, torch.Tensor] | None]) -> dict[str, torch.Tensor]:
    """The stage-2 state dict `target` with every stage-1 tensor copied in; keys it has no counterpart for are kept
    (the router stays freshly initialised, as in the reference).

    sources maps "text", "audio", "vision" to a stage-1 state dict. A missing one, or a key stage 2 does not know,
    raises instead of silently training stage 2 from scratch (the reference only prints a warning).
    """
    missing = [modality for modality in MODALITIES if sources.get(modality) is None]
    if missing:
        raise RuntimeError(f"CMC stage 1 left no selected checkpoint for {', '.join(missing)} (every validation loss "
                           f"was NaN?); refusing to start stage 2 from untrained weights.")
    state = dict(target)
    for expert, modality in enumerate(MODALITIES):
        for key, value in sources[modality].items():
            new_key = stage2_key(key, expert)
            if new_key not in state:
                raise RuntimeError(f"stage-1 {modality} weight '{key}' has no stage-2 counterpart '{new_key}'")
            if state[new_key].shape != value.shape:
                raise RuntimeError(f"stage-1 {modality} weight '{key}' has shape {tuple(value.shape)}, stage 2 "
                                   f"expects {tuple(state[new_key].shape)}")
            state[new_key] = value
    return state
