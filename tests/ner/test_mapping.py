"""Project labels onto spaCy's entity types: predicted_values, then the name, then other schemes' names."""
from __future__ import annotations

from ner.mapping import label_types, map_entities
from ner.spans import Span

TYPES = ("CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP", "ORDINAL", "ORG",
         "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART")


def test_conll_labels_map_by_alias():
    m = label_types(["PER", "ORG", "LOC", "MISC"], {}, TYPES)
    assert m["PERSON"] == "PER" and m["ORG"] == "ORG"
    assert m["GPE"] == m["LOC"] == m["FAC"] == "LOC"
    assert m["NORP"] == "MISC" and "DATE" not in m


def test_names_are_case_insensitive_and_beat_aliases():
    m = label_types(["Person", "Loc", "gpe"], {}, TYPES)
    assert m["PERSON"] == "Person" and m["GPE"] == "gpe" and m["LOC"] == "Loc" and m["FAC"] == "Loc"


def test_predicted_values_win_and_unmapped_labels_claim_nothing():
    m = label_types(["Company", "ORG", "Fruit"], {"Company": ["ORG", "product"]}, TYPES)
    assert m == {"ORG": "Company", "PRODUCT": "Company"}
    # a label with predicted_values takes only those, not its own name's aliases
    assert label_types(["Location"], {"Location": ["GPE"]}, TYPES) == {"GPE": "Location"}
    assert label_types(["Fruit"], {"Fruit": ["NOT_A_TYPE"]}, TYPES) == {}


def test_map_entities_renames_and_drops():
    ents = [Span(0, 4, "PERSON", 0.9), Span(5, 9, "DATE", 0.8)]
    assert map_entities(ents, {"PERSON": "PER"}) == [Span(0, 4, "PER", 0.9)]
