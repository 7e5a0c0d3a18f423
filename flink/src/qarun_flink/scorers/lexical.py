"""Lexical overlap: the mean of token F1 (SQuAD style) and ROUGE-L F1.

Pure Python and fast enough for the default path (tens of thousands of pairs a
second): ROUGE-L's longest common subsequence uses the bit-parallel algorithm on
Python integers, so a pair costs O(len(answer)) big-integer operations instead of
an O(n·m) table.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from qarun_flink.scorers.base import Pair

_WORD = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def token_f1(answer: list[str], reference: list[str]) -> float:
    if not answer or not reference:
        return 0.0
    common = sum((Counter(answer) & Counter(reference)).values())
    if common == 0:
        return 0.0
    precision = common / len(answer)
    recall = common / len(reference)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence of two token lists (Hyyrö's bit-vector algorithm)."""
    if not a or not b:
        return 0
    positions: dict[str, int] = {}
    for index, token in enumerate(b):
        positions[token] = positions.get(token, 0) | (1 << index)
    mask = (1 << len(b)) - 1
    row = mask
    for token in a:
        matches = row & positions.get(token, 0)
        row = ((row + matches) | (row - matches)) & mask
    return len(b) - row.bit_count()


def rouge_l(answer: list[str], reference: list[str]) -> float:
    lcs = lcs_length(answer, reference)
    if lcs == 0:
        return 0.0
    precision = lcs / len(answer)
    recall = lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


class LexicalScorer:
    name = "lexical"

    def score(self, pair: Pair) -> float:
        answer, reference = tokens(pair.answer), tokens(pair.reference)
        return (token_f1(answer, reference) + rouge_l(answer, reference)) / 2

    def score_many(self, pairs: Sequence[Pair]) -> list[float]:
        return [self.score(pair) for pair in pairs]
