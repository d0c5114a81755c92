"""The built-in detector rule set, as data. Users add their own in config (`guards.extra_rules`,
`guards.extra_pii`); nothing here is a model, nothing is downloaded.

Injection rules: each adds its score (0-10 scale, capped at 10) when it matches. Phrases that
only *mention* an attack (inside a code block, inline code or quotes) count a fraction, so a
question about prompt injection is not itself one.
"""

from __future__ import annotations

INJECTION_RULES: tuple[tuple[str, str, float, str], ...] = (
    (
        "ignore-previous",
        r"\b(ignore|disregard|forget|skip|override)\b.{0,30}\b(previous|prior|above|earlier|preceding|all|your|the)\b"
        r".{0,20}\b(instructions?|prompts?|rules|directions|guidelines|context|messages?)\b"
        r"|\b(ignore|disregard|forget)\s+(everything|anything|all)\s+(above|before|so far)\b",
        6.0,
        "asks the model to drop its instructions",
    ),
    (
        "reveal-system-prompt",
        r"\b(reveal|show|print|repeat|output|display|leak|tell me|what (is|are|was|were))\b.{0,40}"
        r"\b(system|initial|hidden|original|secret)\s+(prompt|instructions?|message|rules)\b",
        5.0,
        "tries to extract the system prompt",
    ),
    (
        "role-override",
        r"\b(you are now|from now on,? you (are|will)|act as|pretend (to be|you are)|roleplay as)\b.{0,60}"
        r"\b(dan|unfiltered|uncensored|jailbroken|evil|without (any )?(restrictions|limits|filters|rules))\b",
        6.0,
        "assigns an unrestricted persona",
    ),
    (
        "jailbreak-names",
        r"\b(DAN|do anything now|developer mode|jailbreak(ed)?|god mode|STAN|AIM mode)\b",
        3.0,
        "names a known jailbreak",
    ),
    (
        "no-restrictions",
        r"\b(no|without|bypass|disable|ignore|remove)\b.{0,20}\b(restrictions|filters|guardrails|safety|"
        r"content polic(y|ies)|moderation|censorship|ethical guidelines)\b",
        3.5,
        "asks to turn safety off",
    ),
    (
        "fake-system-turn",
        r"(^|\n)\s*(###\s*)?(system|assistant)\s*:\s|<\|?(im_start|system|endoftext)\|?>|\[/?INST\]|\[system\]",
        4.0,
        "forges a system or assistant turn",
    ),
    (
        "new-instructions",
        r"\b(new|updated|real|actual|true)\s+(instructions?|task|objective|directive)s?\s*(:|are|is)",
        3.0,
        "announces replacement instructions",
    ),
    (
        "exfiltrate",
        r"\b(send|post|upload|exfiltrate|forward|leak)\b.{0,40}\b(api keys?|passwords?|credentials|secrets?|tokens?)\b"
        r".{0,40}\b(to|via)\b",
        5.0,
        "asks to move credentials somewhere",
    ),
    (
        "encoded-payload",
        r"\b(decode|base64|rot13|hex)\b.{0,30}\b(and|then)\b.{0,20}\b(follow|execute|run|obey)\b",
        5.0,
        "hides instructions behind an encoding",
    ),
)

# Credential shapes: used by the `secret` PII detector and by the upstream-error scrubber.
SECRET_PATTERNS: tuple[tuple[str, str], ...] = (
    ("openai", r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"),
    ("aws-access-key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github", r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    ("slack", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    ("google", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("private-key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    ("bearer", r"\b(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*"),
    ("aimm-key", r"\baimm_[0-9a-f]{12}_[A-Za-z0-9_\-]{16,}"),
    (
        "assignment",
        r"\b(?i:api[_-]?key|secret|password|passwd|access[_-]?token|auth[_-]?token)\b\s*[:=]\s*"
        r"['\"]?[A-Za-z0-9._\-+/]{12,}['\"]?",
    ),
)

# Literal words (lower-case) at least one of which a rule needs in the text: a rule whose words
# are all absent is skipped without running its regex (most prompts skip every rule).
INJECTION_TRIGGERS: dict[str, tuple[str, ...]] = {
    "ignore-previous": ("ignore", "disregard", "forget", "skip", "override"),
    "reveal-system-prompt": ("system", "initial", "hidden", "original", "secret"),
    "role-override": ("you are now", "from now on", "act as", "pretend", "roleplay"),
    "jailbreak-names": ("dan", "do anything now", "developer mode", "jailbreak", "god mode", "stan", "aim mode"),
    "no-restrictions": (
        "restriction", "filter", "guardrail", "safety", "content polic", "moderation", "censorship", "ethical",
    ),
    "fake-system-turn": ("system", "assistant", "<|", "[inst", "[/inst"),
    "new-instructions": ("instruction", "task", "objective", "directive"),
    "exfiltrate": ("key", "password", "credential", "secret", "token"),
    "encoded-payload": ("decode", "base64", "rot13", "hex"),
}  # fmt: skip

# Substrings (case-sensitive unless noted) without which a credential shape cannot match.
SECRET_TRIGGERS: tuple[str, ...] = (
    "sk-", "AKIA", "ASIA", "gh", "xox", "AIza", "eyJ", "PRIVATE KEY", "earer", "EARER", "aimm_",
    "key", "KEY", "ecret", "ECRET", "assw", "ASSW", "oken", "OKEN",
)  # fmt: skip

PII_PATTERNS: dict[str, str] = {
    "email": r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
    # Formatted numbers only (+country, (area), or dashed/dotted groups): bare digit runs are
    # order numbers far more often than phone numbers.
    "phone": r"(?:(?<![\w+])\+\d{1,3}[\s.\-]?\(?\d{1,4}\)?(?:[\s.\-]?\d{2,4}){2,4}(?!\w)"
    r"|(?<!\w)\(\d{3}\)\s?\d{3}[\s.\-]\d{4}(?!\w)|(?<![\w\-])\d{3}[.\-]\d{3}[.\-]\d{4}(?![\w\-]))",
    "card": r"(?<!\d)(?:\d[ \-]?){12,18}\d(?!\d)",
    "iban": r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b",
    "ssn": r"(?<![\d\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d\-])",
}

# Words right before a Luhn-valid number that say it is not a card.
NOT_A_CARD_CONTEXT = (
    r"(?i)(order|invoice|tracking|ticket|ref(erence)?|shipment|account|customer|case|po)"
    r"\s*(no\.?|number|#|id)?\s*[:#]?\s*$"
)

IBAN_LENGTHS: dict[str, int] = {
    "AT": 20, "BE": 16, "CH": 21, "CZ": 24, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27, "GB": 22,
    "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "SE": 24,
}  # fmt: skip
