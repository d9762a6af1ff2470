"""What annotators fixed in recognized lines, learned as edits to apply to new lines (asr's adaptation, for text
read from images). OCR is case- and punctuation-sensitive, so nothing is normalised away.

Two things are learned from (recognized, corrected) line pairs:
- rules: a span of up to 3 recognized tokens that annotators replaced by the same tokens again and again
  ("Kube flow" -> "Kubeflow", "INV0ICE" -> "INVOICE"), applied wherever the span occurs again;
- a lexicon: the words annotators had to write in. A recognized token that is no word the project ever wrote and
  lies within a small edit distance of exactly one lexicon word is replaced by it ("Kubeflovv" -> "Kubeflow").
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import extract

MAX_SPAN = 3  # tokens on either side of a rule
MIN_WORD = 4  # shorter tokens are too easily another word at distance 1 ("the" / "tho")
_EDGE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)  # leading punctuation, the word, trailing punctuation


@dataclass
class Rule:
    """Replace the token span `wrong` (exact, whole tokens) by `right`."""

    wrong: str
    right: str
    count: int


def max_distance(word: str) -> int:
    """The edit distance within which a recognized token may be taken for `word`: 1 up to 7 characters, then one
    more every 6 (a misread character or two, not another word)."""
    return 1 + max(0, len(word) - 2) // 6


@dataclass
class Corrections:
    """Rules and a lexicon; `use_lexicon` is the variant the publish guard chose."""

    rules: list[Rule] = field(default_factory=list)
    lexicon: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)  # words the project wrote: never "corrected" into another
    use_lexicon: bool = True

    def __post_init__(self):
        self._rules = sorted(self.rules, key=lambda r: -len(r.wrong.split()))
        self._known = set(self.known) | set(self.lexicon)

    def apply(self, text: str) -> str:
        """`text` with the rules applied (longest span first), then the lexicon to the remaining tokens."""
        tokens = text.split()
        for rule in self._rules:
            wrong, right = rule.wrong.split(), rule.right.split()
            i, out = 0, []
            while i < len(tokens):
                if tokens[i:i + len(wrong)] == wrong:
                    out += right
                    i += len(wrong)
                else:
                    out.append(tokens[i])
                    i += 1
            tokens = out
        if self.use_lexicon and self.lexicon:
            tokens = [self._nearest(t) for t in tokens]
        return " ".join(tokens) if tokens or not text.strip() else text

    def _nearest(self, token: str) -> str:
        lead, word, trail = _EDGE.match(token).groups()
        if len(word) < MIN_WORD or word in self._known or not any(c.isalpha() for c in word):
            return token
        found = extract(word, self.lexicon, scorer=Levenshtein.distance, limit=2,
                        score_cutoff=max_distance(word))
        if not found or (len(found) > 1 and found[1][1] == found[0][1]):
            return token  # nothing near, or two words as near: leave it to the annotator
        return lead + found[0][0] + trail

    def to_json(self) -> dict:
        return {"rules": [asdict(r) for r in self.rules], "lexicon": self.lexicon, "known": self.known,
                "use_lexicon": self.use_lexicon}

    @classmethod
    def from_json(cls, raw: dict) -> Corrections:
        return cls([Rule(**r) for r in raw.get("rules", [])], list(raw.get("lexicon", [])),
                   list(raw.get("known", [])), bool(raw.get("use_lexicon", True)))


def _edits(hypothesis: str, reference: str) -> list[tuple[str, str]]:
    """(wrong tokens, right tokens) of each replaced span of at most MAX_SPAN tokens on either side."""
    hyp, ref = hypothesis.split(), reference.split()
    out = []
    for op, h0, h1, r0, r1 in SequenceMatcher(None, hyp, ref, autojunk=False).get_opcodes():
        if op == "replace" and h1 - h0 <= MAX_SPAN and r1 - r0 <= MAX_SPAN:
            out.append((" ".join(hyp[h0:h1]), " ".join(ref[r0:r1])))
    return out


def _occurrences(span: str, texts: Sequence[str]) -> int:
    wrong, n = span.split(), 0
    for text in texts:
        tokens = text.split()
        n += sum(tokens[i:i + len(wrong)] == wrong for i in range(len(tokens) - len(wrong) + 1))
    return n


def learn(pairs: Sequence[tuple[str, str]], min_count: int = 2, min_precision: float = 0.5) -> Corrections:
    """Corrections from (recognized, corrected) line pairs.

    A rule needs `min_count` identical corrections, and its span must have been corrected so in at least
    `min_precision` of the places it was recognized (so a right reading is not rewritten everywhere). A lexicon
    word is a corrected word (letters, MIN_WORD or more) the recognizer did not produce where it stood.
    """
    spans: Counter[tuple[str, str]] = Counter()
    lexicon: Counter[str] = Counter()
    known: set[str] = set()
    for hyp, ref in pairs:
        hyp_words = {_EDGE.match(t).group(2) for t in hyp.split()}
        known |= {_EDGE.match(t).group(2) for t in ref.split()}
        for wrong, right in _edits(hyp, ref):
            spans[(wrong, right)] += 1
            for token in right.split():
                word = _EDGE.match(token).group(2)
                if len(word) >= MIN_WORD and any(c.isalpha() for c in word) and word not in hyp_words:
                    lexicon[word] += 1
    best: dict[str, tuple[str, int]] = {}
    for (wrong, right), n in spans.items():
        if n >= min_count and n > best.get(wrong, ("", 0))[1]:
            best[wrong] = (right, n)
    hyps = [h for h, _ in pairs]
    rules = [Rule(w, r, n) for w, (r, n) in best.items() if n / max(1, _occurrences(w, hyps)) >= min_precision]
    return Corrections(sorted(rules, key=lambda r: (-r.count, r.wrong)), sorted(lexicon),
                       sorted(known - set(lexicon)))


def save(corrections: Corrections, path: str | Path) -> None:
    Path(path).write_text(json.dumps(corrections.to_json(), indent=1, ensure_ascii=False), encoding="utf-8")


def load(path: str | Path) -> Corrections:
    return Corrections.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
