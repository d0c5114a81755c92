"""Precision/recall of the detectors over the labelled corpus in tests/data/guard_corpus.jsonl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from aimm_gateway.security.detectors import Detectors

CORPUS = Path(__file__).resolve().parents[1] / "data" / "guard_corpus.jsonl"
PII_KINDS = ("email", "phone", "card", "iban", "ssn", "secret")


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def add(self, predicted: bool, actual: bool) -> None:
        self.tp += predicted and actual
        self.fp += predicted and not actual
        self.fn += actual and not predicted


def load() -> list[dict[str, object]]:
    return [orjson.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def evaluate(threshold: float = 5.0) -> dict[str, Score]:
    d = Detectors()
    out = {"injection": Score(), **{k: Score() for k in PII_KINDS}}
    for sample in load():
        text = str(sample["text"])
        out["injection"].add(d.injection(text).score >= threshold, bool(sample["injection"]))
        found = {f.kind for f in d.pii(text, PII_KINDS)}
        labels = set(sample["pii"])  # type: ignore[arg-type]
        for kind in PII_KINDS:
            out[kind].add(kind in found, kind in labels)
    return out


def table(threshold: float = 5.0) -> str:
    rows = ["| detector | TP | FP | FN | precision | recall |", "|---|---|---|---|---|---|"]
    for name, s in evaluate(threshold).items():
        rows.append(f"| {name} | {s.tp} | {s.fp} | {s.fn} | {s.precision:.2f} | {s.recall:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
