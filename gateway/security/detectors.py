"""Prompt-injection score and PII findings over text, from the rule set in `rules.py` plus config.

Pure and synchronous: a `Detectors` object is compiled once per config snapshot and shared by
every request. Everything is explainable: a score lists the rules that made it, a finding names
its detector and position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from aimm_gateway.security.rules import (
    IBAN_LENGTHS,
    INJECTION_RULES,
    INJECTION_TRIGGERS,
    NOT_A_CARD_CONTEXT,
    PII_PATTERNS,
    SECRET_PATTERNS,
    SECRET_TRIGGERS,
)

MENTION_WEIGHT = 0.3  # a phrase inside code or quotes talks *about* an attack
_QUOTED = re.compile(r"```[\s\S]*?(```|$)|`[^`\n]+`|\"[^\"\n]{0,300}\"|'[^'\n]{8,300}'|“[^”\n]{0,300}”")
_NOT_A_CARD = re.compile(NOT_A_CARD_CONTEXT)
_DIGIT = re.compile(r"\d")
# Cheap gates: a detector whose gate fails on the text cannot match, so its regex is not run.
_PII_GATES = {
    "email": lambda t: "@" in t,
    "phone": lambda t: _DIGIT.search(t) is not None,
    "card": lambda t: _DIGIT.search(t) is not None,
    "iban": lambda t: _DIGIT.search(t) is not None,
    "ssn": lambda t: "-" in t,
}
SECRET_RE = re.compile("|".join(f"(?:{p})" for _, p in SECRET_PATTERNS))


def scrub_secrets(text: str, known: Iterable[str] = ()) -> str:
    """Credential shapes and any known secret value (the upstream key), replaced by [REDACTED]."""
    for value in known:
        if value and len(value) >= 6:
            text = text.replace(value, "[REDACTED]")
    return SECRET_RE.sub("[REDACTED]", text)


@dataclass(frozen=True, slots=True)
class InjectionScore:
    score: float  # 0-10
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # email | phone | card | iban | ssn | secret | custom id
    start: int
    end: int


_NOTHING = InjectionScore(0.0, ())


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_brand_ok(digits: str) -> bool:
    """Issuer prefixes of the big networks, with their lengths."""
    n = len(digits)
    if digits[0] == "4":
        return n in (13, 16, 19)
    two, four = int(digits[:2]), int(digits[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return n in (16, 19)
    return 3528 <= four <= 3589 and 16 <= n <= 19


def iban_ok(text: str) -> bool:
    compact = text.replace(" ", "")
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


class Detectors:
    def __init__(
        self, extra_rules: Iterable[tuple[str, str, float]] = (), extra_pii: Iterable[tuple[str, str]] = ()
    ) -> None:
        rules = [(rid, pattern, score) for rid, pattern, score, _ in INJECTION_RULES] + list(extra_rules)
        self._rules = [(rid, re.compile(p, re.IGNORECASE), s, INJECTION_TRIGGERS.get(rid, ())) for rid, p, s in rules]
        self._pii = {kind: re.compile(p) for kind, p in PII_PATTERNS.items()}
        self._pii |= {kind: re.compile(p) for kind, p in extra_pii}

    # -- injection -------------------------------------------------------------------------------

    def injection(self, text: str) -> InjectionScore:
        lowered = text.lower()
        candidates = [r for r in self._rules if not r[3] or any(word in lowered for word in r[3])]
        if not candidates:
            return _NOTHING
        quoted = [m.span() for m in _QUOTED.finditer(text)] if ("`" in text or '"' in text or "'" in text) else []
        total, hits = 0.0, []
        for rid, pattern, score, _ in candidates:
            best = 0.0
            for m in pattern.finditer(text):
                inside = any(a <= m.start() and m.end() <= b for a, b in quoted)
                best = max(best, score * (MENTION_WEIGHT if inside else 1.0))
                if best == score:
                    break
            if best:
                total += best
                hits.append(rid)
        return InjectionScore(round(min(10.0, total), 1), tuple(hits))

    # -- PII -------------------------------------------------------------------------------------

    def pii(self, text: str, kinds: Iterable[str]) -> list[Finding]:
        found: list[Finding] = []
        for kind in kinds:
            if kind == "secret":
                if any(t in text for t in SECRET_TRIGGERS):
                    found += [Finding("secret", m.start(), m.end()) for m in SECRET_RE.finditer(text)]
                continue
            pattern = self._pii.get(kind)
            gate = _PII_GATES.get(kind)
            if pattern is None or (gate is not None and not gate(text)):
                continue
            for m in pattern.finditer(text):
                if self._valid(kind, m.group(), text, m.start()):
                    found.append(Finding(kind, m.start(), m.end()))
        return _non_overlapping(found)

    def _valid(self, kind: str, value: str, text: str, start: int) -> bool:
        if kind == "card":
            digits = re.sub(r"\D", "", value)
            if not (13 <= len(digits) <= 19 and luhn_ok(digits) and _card_brand_ok(digits)):
                return False
            return not _NOT_A_CARD.search(text[max(0, start - 24) : start])
        if kind == "iban":
            return iban_ok(value)
        return True

    def redact(self, text: str, kinds: Iterable[str]) -> tuple[str, list[Finding]]:
        findings = self.pii(text, kinds)
        return redact_spans(text, findings), findings


def redact_spans(text: str, findings: list[Finding]) -> str:
    out, pos = [], 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(f"[REDACTED:{f.kind}]")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def _non_overlapping(found: list[Finding]) -> list[Finding]:
    # Longest first at each position, so a card is not also reported as a phone inside it.
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    out: list[Finding] = []
    for f in found:
        if not out or f.start >= out[-1].end:
            out.append(f)
    return out


class StreamRedactor:
    """Redacts a text stream chunk by chunk, holding back a tail that might be the start of a match.

    `feed` returns what may be sent now; `flush` returns the rest at the end of the stream.
    """

    HOLD = 48  # longer than any PII value we look for, short enough not to delay tokens visibly

    def __init__(self, detectors: Detectors, kinds: Iterable[str]) -> None:
        self._d = detectors
        self._kinds = tuple(kinds)
        self._buf = ""
        self.findings = 0

    def feed(self, text: str) -> str:
        self._buf += text
        cut = len(self._buf) - self.HOLD
        if cut <= 0:
            return ""
        findings = self._d.pii(self._buf, self._kinds)
        for f in findings:
            if f.start < cut < f.end:
                cut = f.start  # never split a match between what is sent and what is held
        done = [f for f in findings if f.end <= cut]
        out = redact_spans(self._buf[:cut], done)
        self.findings += len(done)
        self._buf = self._buf[cut:]
        return out

    def flush(self) -> str:
        out, findings = self._d.redact(self._buf, self._kinds)
        self.findings += len(findings)
        self._buf = ""
        return out
