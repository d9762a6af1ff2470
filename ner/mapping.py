"""A project's entity labels onto spaCy's entity types.

A label claims spaCy types, first by its `predicted_values` (`<Label value="Company" predicted_values="ORG"/>`),
then by its own name (case-insensitive), then through the usual names of other schemes (CoNLL's PER, LOC, MISC,
OntoNotes' GPE, ...) for types no label claimed more directly. Labels that claim nothing are not predicted from
spaCy; spaCy types no label claims are dropped.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .spans import Span

# Other schemes' names for spaCy's (OntoNotes) types. CoNLL-2003's LOC covers OntoNotes' GPE, LOC and FAC, its
# MISC the nationalities, events, products, works of art, languages and laws.
ALIASES: dict[str, tuple[str, ...]] = {
    "per": ("PERSON",), "people": ("PERSON",), "name": ("PERSON",),
    "loc": ("GPE", "LOC", "FAC"), "location": ("GPE", "LOC", "FAC"), "place": ("GPE", "LOC", "FAC"),
    "city": ("GPE",), "country": ("GPE",),
    "organization": ("ORG",), "organisation": ("ORG",), "company": ("ORG",),
    "misc": ("NORP", "EVENT", "PRODUCT", "WORK_OF_ART", "LANGUAGE", "LAW"),
    "nationality": ("NORP",), "product": ("PRODUCT",), "event": ("EVENT",),
    "number": ("CARDINAL",), "amount": ("QUANTITY",), "facility": ("FAC",),
}


def label_types(labels: Sequence[str], predicted_values: Mapping[str, Sequence[str]],
                types: Iterable[str]) -> dict[str, str]:
    """spaCy type -> project label.

    Args:
        labels: the project's labels, in config order (an earlier label wins a type two labels claim equally).
        predicted_values: label -> the type names it says it stands for.
        types: spaCy's entity types.
    """
    by_lower = {t.lower(): t for t in types}
    claims: dict[str, str] = {}
    for label in labels:  # explicit: predicted_values
        for value in predicted_values.get(label, ()):
            t = by_lower.get(str(value).strip().lower())
            if t is not None:
                claims.setdefault(t, label)
    for label in labels:  # the label is a spaCy type
        t = by_lower.get(label.strip().lower())
        if t is not None and not predicted_values.get(label):
            claims.setdefault(t, label)
    for label in labels:  # another scheme's name
        if predicted_values.get(label):
            continue
        for t in ALIASES.get(label.strip().lower(), ()):
            if t in by_lower.values():
                claims.setdefault(t, label)
    return claims


def map_entities(entities: Iterable[Span], type_to_label: Mapping[str, str]) -> list[Span]:
    """spaCy's entities renamed to project labels; entities of types no label claims are dropped."""
    return [Span(e.start, e.end, type_to_label[e.label], e.score) for e in entities if e.label in type_to_label]
