"""One Prometheus exposition from every worker's own: each sample gains a `worker` label.

Why per-worker series rather than prometheus-client's multiprocess mode: the mode makes every
`inc()`/`observe()` a locked write to an mmap'd file in every process (measured in
docs/benchmarks.md), is switched on process-wide by an environment variable, and needs a
merge policy per gauge. Here a request pays nothing; a scrape gathers the workers' registries
(over unix sockets, see `peers.py`) and relabels them. `sum without (worker)` gives the pod's
totals, and a restarted worker is an ordinary counter reset of its own series.

Why text-level: the merge runs on the event loop of the worker answering the scrape, and at 1,000
models each worker's exposition is ~8 MB / 80,000 lines; parsing it with prometheus-client's parser
and rendering it again stalled the loop for seconds. Here the bytes are cut into families at their
`# HELP` lines and each family's sample lines are relabelled by C-speed bytes methods: no value is
parsed, no line becomes a Python object (4 workers x 8 MB: ~20 s before, ~0.1 s now; see `_relabel`).

What it relies on: the input is each worker's text exposition (0.0.4), written by
`metrics_families.exposition_text` exactly as prometheus-client's `generate_latest` would. Each family is
`# HELP name doc`, `# TYPE name type`, then its sample lines: `name{l1="v1",l2="v2"} value` or
`name value` (an optional timestamp after the value is kept). A label block is never `{}` and has
no trailing comma; label values escape `"`, `\\` and newlines but may hold `}`, `{`, spaces and
commas; values and timestamps hold none of `{}"`. So a label block ends at the last `}` of its line,
and `worker="<index>"` goes just before it: where sorting the label names, as re-rendering did,
puts it, since every label of the gateway sorts before `worker` (tests pin this; none is `worker`).

Input that does not fit is merged as far as it can be, never raising on a scrape: a line cut off at
the end (a worker that died mid-answer) is dropped; lines before the first HELP line go first, as
untyped samples, if they parse as sample lines (others are dropped); comment lines right after a
HELP line are its header (HELP and TYPE of that name kept, others dropped), later ones inside a
family are taken for sample lines; a family's HELP and TYPE are each the first worker's that has
one, so a worker cut off between the two does not leave the family untyped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

WORKER_LABEL = "worker"
UP = "ai_multimodel_worker_up"
_UP_HEADER = b"# HELP %s 1 for each worker process that answered this scrape.\n# TYPE %s gauge\n" % ((UP.encode(),) * 2)
_HEADER_KINDS = (b"HELP", b"TYPE")
_HELP = b"# HELP "
# The names of a family's sample lines by its TYPE, as suffixes of its name (others: the name).
_SAMPLE_SUFFIXES = {b"histogram": (b"_bucket", b"_count", b"_sum"), b"summary": (b"", b"_count", b"_sum")}

# The `}` that closes a line's label block: the last one on its line.
_BLOCK_END = re.compile(rb"\}(?![^\n}]*\})")
# An unlabelled sample line (led by its `\n`): the name and the blank before the value.
_BARE = re.compile(rb"\n([a-zA-Z_:][a-zA-Z0-9_:]*+)([ \t])")
_LABEL = rb'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
# A whole sample line, to keep what parses of the lines before the first HELP line.
_VALUE = rb"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.|Inf|NaN)"
_SAMPLE = re.compile(
    rb"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{" + _LABEL + rb"(?:," + _LABEL + rb")*\})? " + _VALUE + rb"(?: -?[0-9]+)?"
)


@dataclass
class _Family:
    header: dict[bytes, bytes] = field(default_factory=dict)  # HELP/TYPE -> its line, from the first worker
    bodies: list[bytes] = field(default_factory=list)  # relabelled sample lines, each led by `\n`

    def take_header(self, name: bytes, comments: list[bytes]) -> None:
        """Keep the HELP and the TYPE line of `name` among `comments` unless an earlier worker's were kept."""
        for line in comments:
            kind = line[2:6]
            if kind in _HEADER_KINDS and kind not in self.header and line[7:].split(None, 1)[:1] == [name]:
                self.header[kind] = line


def merge_metrics(expositions: dict[int, bytes], pids: dict[int, int]) -> bytes:
    """Merge the text expositions of workers (by index) into one, `worker="<index>"` on every sample.

    Families keep the order of their first appearance (by worker index), each worker's samples in
    index order. `pids` gives the workers that answered with their process ids; they get an
    `ai_multimodel_worker_up{pid,worker} 1` series, so a restarted worker shows a new pid.
    """
    families: dict[bytes, _Family] = {}
    loose: list[bytes] = []
    up = UP.encode()
    for index in sorted(expositions):
        worker = b'%s="%d"' % (WORKER_LABEL.encode(), index)
        for name, comments, body in _blocks(expositions[index]):
            if not name:
                loose.append(_relabel(_parsable(body), worker, ()))
            elif name != up:  # a worker's own would be a second family of that name; ours is below
                family = families.get(name) or families.setdefault(name, _Family())
                family.take_header(name, comments)
                if body:
                    family.bodies.append(_relabel(body, worker, _sample_names(name, comments)))
    out = [b"".join(loose)[1:] + b"\n"] if any(loose) else []
    for family in families.values():
        out.append(b"\n".join(family.header[k] for k in _HEADER_KINDS if k in family.header))
        out.extend(family.bodies)
        out.append(b"\n")
    out.append(_UP_HEADER)
    out.extend(b'%s{pid="%d",%s="%d"} 1.0\n' % (up, pid, WORKER_LABEL.encode(), i) for i, pid in sorted(pids.items()))
    return b"".join(out)


def _blocks(text: bytes) -> Iterator[tuple[bytes, list[bytes], bytes]]:
    """(family name, its comment lines, its sample lines) per `# HELP` line of an exposition.

    The comment lines are the HELP line and those right after it (the TYPE). The sample lines are a
    slice from the `\n` before the first to the end of the last (empty when there are none), so each
    line is led by a `\n` to anchor on. Lines before the first HELP line come first, name empty.
    """
    end = text.rfind(b"\n")  # after it, at most a line cut off mid-write
    if end < 0:
        return
    start = 0 if text.startswith(_HELP) else text.find(b"\n" + _HELP, 0, end) + 1  # a HELP line; 0: none
    if not text.startswith(_HELP):
        yield b"", [], b"\n" + text[: start - 1 if start else end]
        if not start:
            return
    while True:
        line_end = text.find(b"\n", start)
        comments = [text[start:line_end]]
        while line_end < end and text.startswith(b"#", line_end + 1) and not text.startswith(_HELP, line_end + 1):
            comments.append(text[line_end + 1 : (line_end := text.find(b"\n", line_end + 1))])
        following = text.find(b"\n" + _HELP, line_end, end)  # the `\n` before the next HELP line
        parts = comments[0].split(None, 3)
        yield parts[2] if len(parts) > 2 else b"", comments, text[line_end : end if following < 0 else following]
        if following < 0:
            return
        start = following + 1


def _sample_names(name: bytes, comments: list[bytes]) -> tuple[bytes, ...]:
    """The names the family's sample lines should have, by the TYPE among its comment lines."""
    kind = next((parts[3] for parts in map(bytes.split, comments) if parts[1:3] == [b"TYPE", name] and parts[3:]), b"")
    return tuple(name + suffix for suffix in _SAMPLE_SUFFIXES.get(kind, (b"",)))


def _relabel(body: bytes, worker: bytes, names: tuple[bytes, ...]) -> bytes:
    """`worker` as the last label of every sample line in `body` (each led by its `\n`).

    Fast and exact when every line is `<one of names>{...}` with one `}`: that `}` ends the label
    block. Counted, not assumed: lines by their `\n`, label blocks by `\n<name>{`, and `}`s by what
    inserting before each added. Otherwise regexes: the last `}` of each line (a `}` in a label
    value), and, unless every line has labels, a label block after each unlabelled line's name.
    """
    labelled = body.replace(b"}", b"," + worker + b"}")
    braces = (len(labelled) - len(body)) // (len(worker) + 1)
    lines = len(body.replace(b"\n", b"\n\n")) - len(body)  # as bytes.count, but memchr-fast
    all_labelled = sum(body.count(b"\n%s{" % n) for n in names) == lines
    if all_labelled and braces == lines:
        return labelled
    labelled = _BLOCK_END.sub(b"," + worker + b"}", body)
    return labelled if all_labelled else _BARE.sub(b"\n\\1{" + worker + b"}\\2", labelled)


def _parsable(body: bytes) -> bytes:
    """The lines of `body` (each led by its `\n`) that are whole sample lines."""
    return b"".join(b"\n" + line for line in body.split(b"\n") if _SAMPLE.fullmatch(line))
