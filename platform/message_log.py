"""The games a listener logs to messages/: what was meant, said and understood."""

from __future__ import annotations

import torch

from neurocomm.platform.interfaces import Batch
from neurocomm.platform.metrics import LoggedGame

Edge = tuple[int, int]


def logged_games(round_: int, edge: Edge, wire: torch.Tensor, lengths: torch.Tensor, batch: Batch,
                 choice: torch.Tensor, success: torch.Tensor, k: int) -> list[LoggedGame]:
    """The first ``k`` games of one edge as received (tokens read up to each message's end)."""
    tokens = (wire.argmax(-1) if wire.is_floating_point() else wire)[:k].tolist()
    lens = lengths[:k].tolist()
    label = batch.extra.get("label")
    out = []
    for g in range(min(k, len(batch))):
        answer = choice[g, 0].tolist() if choice.dim() >= 2 else choice[g].tolist()
        out.append(LoggedGame(
            round=round_, speaker=edge[0], listener=edge[1], game=g,
            target=batch.target[g].tolist(),
            message=tokens[g][: lens[g]],
            length=lens[g],
            choice=int(answer) if not isinstance(answer, list) else -1,
            target_index=int(label[g]) if label is not None else -1,
            success=bool(success[g, 0] > 0.5),
        ))
    return out
