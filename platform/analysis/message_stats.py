"""Message statistics: entropy, symbols used, length, synonymy, homonymy, and the lexicon.

Objects and messages are compared as whole tuples: two messages are the same when every symbol
(end-of-message included) is the same.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from neurocomm.platform.analysis.distances import EOS, Messages
from neurocomm.platform.analysis.information import entropy_bits

Item = tuple[int, ...]


def as_tuples(rows: Messages | Sequence[Sequence[int]]) -> list[Item]:
    """Messages or objects as tuples of ints (hashable, comparable)."""
    return [tuple(int(x) for x in np.asarray(r).reshape(-1)) for r in rows]


def message_entropy(messages: Messages) -> float:
    """Entropy (bits) of the distribution of whole messages."""
    return entropy_bits(as_tuples(messages))


def symbols_used(messages: Messages) -> int:
    """How many distinct symbols, end-of-message excluded, occur in the messages."""
    return len({s for m in as_tuples(messages) for s in m if s != EOS})


def mean_length(messages: Messages) -> float:
    """Mean number of symbols per message, end-of-message included."""
    return float(np.mean([len(m) for m in as_tuples(messages)])) if len(messages) else float("nan")


def _mean_distinct(keys: Sequence[Hashable], values: Sequence[Hashable]) -> float:
    if not keys:
        return float("nan")
    seen: dict[Hashable, set[Hashable]] = {}
    for k, v in zip(keys, values):
        seen.setdefault(k, set()).add(v)
    return float(np.mean([len(s) for s in seen.values()]))


def synonymy(objects: Sequence[Sequence[int]], messages: Messages) -> float:
    """Mean number of distinct messages used for one object (1 = no synonyms)."""
    return _mean_distinct(as_tuples(objects), as_tuples(messages))


def homonymy(objects: Sequence[Sequence[int]], messages: Messages) -> float:
    """Mean number of distinct objects named by one message (1 = no homonyms)."""
    return _mean_distinct(as_tuples(messages), as_tuples(objects))


def message_statistics(objects: Sequence[Sequence[int]], messages: Messages) -> dict[str, float]:
    """All message statistics of one set of (object, message) pairs."""
    return {
        "n_messages": float(len(messages)),
        "entropy": message_entropy(messages),
        "distinct_messages": float(len(set(as_tuples(messages)))),
        "symbols_used": float(symbols_used(messages)),
        "mean_length": mean_length(messages),
        "synonymy": synonymy(objects, messages),
        "homonymy": homonymy(objects, messages),
    }


def lexicon(games: pd.DataFrame) -> pd.DataFrame:
    """Each speaker's most frequent message for each object, with its count and share.

    Ties go to the lexicographically smallest message, so the table is deterministic.
    Columns: agent, object, message, count, share (of that agent's uses for that object).
    """
    columns = ["agent", "object", "message", "count", "share"]
    if games.empty:
        return pd.DataFrame(columns=columns)
    counts = games.groupby(["speaker", "target", "message"], sort=True).size().rename("count").reset_index()
    totals = counts.groupby(["speaker", "target"])["count"].transform("sum")
    counts["share"] = counts["count"] / totals
    counts = counts.sort_values(
        ["speaker", "target", "count", "message"], ascending=[True, True, False, True]
    )
    top = counts.drop_duplicates(["speaker", "target"], keep="first")
    top = top.rename(columns={"speaker": "agent", "target": "object"})
    return top[columns].reset_index(drop=True)


def lexicon_mapping(table: pd.DataFrame) -> dict[int, dict[Item, Item]]:
    """``lexicon`` table → {agent: {object: message}}."""
    out: dict[int, dict[Item, Item]] = {}
    for agent, obj, msg in zip(table["agent"], table["object"], table["message"]):
        out.setdefault(int(agent), {})[tuple(obj)] = tuple(msg)
    return out
