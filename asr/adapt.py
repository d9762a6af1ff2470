"""Adaptation to a project's corrected transcripts, without touching the network's weights.

Two things are learned from (base hypothesis, corrected transcript) pairs:
- a domain vocabulary: the words annotators had to write in where the model heard something else; passed to the
  decoder as hotwords, which biases Whisper towards those spellings;
- correction rules: a span of hypothesis words that annotators replaced by the same words again and again
  ("cube flow" -> "Kubeflow"), applied to new transcripts.
`train_adaptation` keeps the variant (rules only, or vocabulary + rules) that does best on held-out corrected
files and says whether it beats the parent's word error rate there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jiwer

from .metrics import normalize, wer

log = logging.getLogger(__name__)

FILE = "adaptation.json"
MAX_VOCABULARY = 40  # hotwords go into Whisper's prompt, which holds at most 224 tokens
MIN_EXAMPLES = 3


class AdaptationError(ValueError):
    """Too little usable data to learn from."""


@dataclass
class Rule:
    """Replace the words `wrong` (case and punctuation ignored) by `right`."""

    wrong: str
    right: str
    count: int

    def pattern(self) -> re.Pattern:
        words = [re.escape(w) for w in self.wrong.split()]
        return re.compile(r"(?<![\w'])" + r"[^\w']+".join(words) + r"(?![\w'])", re.IGNORECASE)


@dataclass
class Adaptation:
    """What a trained version holds: vocabulary for the decoder and rules for its output."""

    vocabulary: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    use_hotwords: bool = True
    base_model: str | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def hotwords(self) -> str | None:
        return " ".join(self.vocabulary) if self.use_hotwords and self.vocabulary else None

    def apply(self, text: str) -> str:
        """`text` with every rule applied, longest first (so "cube flow" wins over "cube")."""
        for rule in sorted(self.rules, key=lambda r: -len(r.wrong.split())):
            text = rule.pattern().sub(rule.right.replace("\\", "\\\\"), text)
        return text

    def save(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / FILE).write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> Adaptation:
        raw = json.loads((Path(folder) / FILE).read_text(encoding="utf-8"))
        raw["rules"] = [Rule(**r) for r in raw.get("rules", [])]
        return cls(**raw)


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """(surface words, normalised words) of `text`, one per whitespace token that is not pure punctuation."""
    surface, norm = [], []
    for tok in text.split():
        n = normalize(tok)
        if n:
            surface.append(tok.strip(".,;:!?\"()[]{}"))
            norm.append(n)
    return surface, norm


def _edits(hypothesis: str, reference: str) -> list[tuple[str, str, str]]:
    """(wrong words normalised, right words normalised, right words as written) for each replaced span."""
    _, hyp = _tokens(hypothesis)
    ref_surface, ref = _tokens(reference)
    if not hyp or not ref:
        return []
    out = []
    chunks = jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]
    i = 0
    while i < len(chunks):
        if chunks[i].type == "equal":
            i += 1
            continue
        j = i  # merge neighbouring substitutions/insertions/deletions into one span edit
        while j + 1 < len(chunks) and chunks[j + 1].type != "equal":
            j += 1
        r0, r1 = chunks[i].ref_start_idx, chunks[j].ref_end_idx
        h0, h1 = chunks[i].hyp_start_idx, chunks[j].hyp_end_idx
        if r1 > r0 and h1 > h0 and h1 - h0 <= 4 and r1 - r0 <= 4:
            out.append((" ".join(hyp[h0:h1]), " ".join(ref[r0:r1]), " ".join(ref_surface[r0:r1])))
        i = j + 1
    return out


def _occurrences(phrase: str, texts: Sequence[str]) -> int:
    pattern = re.compile(r"(?<!\S)" + re.escape(phrase) + r"(?!\S)")
    return sum(len(pattern.findall(" ".join(_tokens(t)[1]))) for t in texts)


def learn(pairs: Sequence[tuple[str, str]], min_count: int = 2, min_precision: float = 0.5,
          max_vocabulary: int = MAX_VOCABULARY) -> Adaptation:
    """Learn vocabulary and rules from (hypothesis, corrected) pairs.

    A rule needs `min_count` identical corrections, and the wrong words must have been corrected to it in at least
    `min_precision` of the places they occur in the hypotheses (so a common word is never rewritten everywhere).
    """
    spans: Counter[tuple[str, str]] = Counter()
    written: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    vocab: Counter[str] = Counter()
    surface: dict[str, Counter[str]] = defaultdict(Counter)
    for hyp, ref in pairs:
        hyp_words = set(_tokens(hyp)[1])
        for wrong, right, shown in _edits(hyp, ref):
            spans[(wrong, right)] += 1
            written[(wrong, right)][shown] += 1
            for norm_w, shown_w in zip(right.split(), shown.split()):
                if norm_w not in hyp_words and not norm_w.isdigit():
                    vocab[norm_w] += 1
                    surface[norm_w][shown_w] += 1
    hyps = [h for h, _ in pairs]
    rules: list[Rule] = []
    best_for: dict[str, tuple[str, int]] = {}
    for (wrong, right), n in spans.items():
        if n >= min_count and n > best_for.get(wrong, ("", 0))[1]:
            best_for[wrong] = (right, n)
    for wrong, (right, n) in best_for.items():
        seen = _occurrences(wrong, hyps)
        if seen and n / seen >= min_precision:
            rules.append(Rule(wrong, written[(wrong, right)].most_common(1)[0][0], n))
    # a word counts as domain vocabulary once it had to be written in `min_count` times
    words = [surface[w].most_common(1)[0][0] for w, n in vocab.most_common(max_vocabulary) if n >= min_count]
    return Adaptation(vocabulary=words, rules=sorted(rules, key=lambda r: (-r.count, r.wrong)))


@dataclass
class Sample:
    """A training file and its corrected transcript."""

    key: str  # stable id (e.g. the task id): decides the held-out split
    audio: str | Path
    reference: str


Decode = Callable[[str | Path, str | None], str]  # (audio, hotwords) -> raw transcript text


def _held_out(samples: Sequence[Sample], fraction: float) -> set[int]:
    n = max(1, round(len(samples) * fraction))
    order = sorted(range(len(samples)), key=lambda i: hashlib.sha256(samples[i].key.encode()).hexdigest())
    return set(order[:n])


def train_adaptation(samples: Sequence[Sample], decode: Decode, parent: Adaptation | None = None,
                     min_count: int = 2, holdout: float = 0.25) -> tuple[Adaptation, dict, bool, str]:
    """Learn an adaptation and decide whether to publish it.

    The base hypotheses (`decode(audio, None)`) of the training split teach a candidate; on the held-out split the
    parent (its hotwords and rules) is compared with the candidate's variants; the better variant is then learned
    again from every sample.

    Returns:
        (adaptation, metrics, publish, reason): publish is False when held-out WER would get worse.

    Raises:
        AdaptationError: fewer than MIN_EXAMPLES usable samples.
    """
    usable = [s for s in samples if normalize(s.reference)]
    if len(usable) < MIN_EXAMPLES:
        raise AdaptationError(f"{len(usable)} corrected transcripts; adaptation needs at least {MIN_EXAMPLES}")
    base = [decode(s.audio, None) for s in usable]
    held = _held_out(usable, holdout)
    train_pairs = [(base[i], usable[i].reference) for i in range(len(usable)) if i not in held]
    refs = [usable[i].reference for i in sorted(held)]
    candidate = learn(train_pairs, min_count=min_count)

    def hyps_with(adaptation: Adaptation | None, hotwords: bool) -> list[str]:
        out = []
        for i in sorted(held):
            raw = decode(usable[i].audio, adaptation.hotwords) if (adaptation and hotwords and
                                                                   adaptation.hotwords) else base[i]
            out.append(adaptation.apply(raw) if adaptation else raw)
        return out

    wer_base = wer(refs, [base[i] for i in sorted(held)])
    wer_before = wer(refs, hyps_with(parent, True)) if parent else wer_base
    candidate.use_hotwords = False
    wer_rules = wer(refs, hyps_with(candidate, False))
    wer_vocab: float | None = None
    if candidate.vocabulary:
        candidate.use_hotwords = True
        wer_vocab = wer(refs, hyps_with(candidate, True))
    use_hotwords = wer_vocab is not None and wer_vocab < wer_rules
    wer_after = wer_vocab if use_hotwords else wer_rules
    final = learn(list(zip(base, [s.reference for s in usable])), min_count=min_count)
    final.use_hotwords = use_hotwords
    metrics = {"wer_base": round(wer_base, 4), "wer_before": round(wer_before, 4), "wer_after": round(wer_after, 4),
               "wer_rules_only": round(wer_rules, 4),
               "wer_vocabulary_and_rules": None if wer_vocab is None else round(wer_vocab, 4),
               "n_rules": len(final.rules), "vocabulary_size": len(final.vocabulary),
               "hotwords": use_hotwords, "n_train": len(train_pairs), "n_heldout": len(held)}
    final.metrics = metrics
    if wer_after > wer_before:
        return final, metrics, False, (f"held-out WER would get worse: {wer_after:.3f} against {wer_before:.3f} "
                                       "for the served model")
    if not final.rules and not final.vocabulary:
        return final, metrics, False, "the corrections teach nothing: no recurring correction and no new word"
    return final, metrics, True, ""
