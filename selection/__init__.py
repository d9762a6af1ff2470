"""Which items to label first: uncertainty measures and batch selection strategies, pure numpy and scikit-learn.

No model, no web framework, no Label Studio: callers hand in what a model said about the open items (confidences,
class probabilities) and where they lie (embeddings) as a `Pool`, and get back an order. The backends use the
measures for their per-task scores, `sync.py rank` the batch strategies, the bench both.

    pool = Pool.from_probs(probs, embeddings=vectors, labeled_embeddings=labeled_vectors)
    batch = get("hybrid").order(pool, 20)
"""
from .pool import Pool
from .registry import (BATCH_STEP, DEFAULT, STRATEGIES, Strategy, UnknownStrategy, get, get_measure, names,
                       scores)
from .uncertainty import MEASURES, combine, entropy, least_confidence, margin

__all__ = ["BATCH_STEP", "DEFAULT", "MEASURES", "STRATEGIES", "Pool", "Strategy", "UnknownStrategy", "combine",
           "entropy", "get", "get_measure", "least_confidence", "margin", "names", "scores"]
