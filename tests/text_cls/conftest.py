from __future__ import annotations

from pathlib import Path

import pytest

from text_cls import ControlSpec, Encoder, get_encoder

# Short descriptions of the TREC-6 coarse classes, as a user would type them in a labeling config.
TREC_DESCRIPTIONS = {
    "ABBR": ["abbreviation", "acronym", "what does an abbreviation stand for"],
    "DESC": ["description", "definition", "what is the meaning of something", "why and how something happens"],
    "ENTY": ["entity", "thing", "animal", "food", "color", "product", "sport", "object"],
    "HUM": ["person", "who is someone", "group of people", "organization"],
    "LOC": ["location", "place", "city", "country", "where is something"],
    "NUM": ["number", "how many", "date", "when", "how much", "quantity", "year"],
}


def read_trec(path: Path) -> tuple[list[str], list[str]]:
    """Questions and coarse labels from a TREC file (`COARSE:fine question`, latin-1)."""
    texts, labels = [], []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.strip():
            label, question = line.split(" ", 1)
            texts.append(question.strip())
            labels.append(label.split(":")[0])
    return texts, labels


@pytest.fixture(scope="session")
def encoder(weights_dir: Path) -> Encoder:
    """The real all-MiniLM-L6-v2 encoder, loaded once for the whole session."""
    return get_encoder(None, weights_dir)


@pytest.fixture(scope="session")
def trec(datasets_dir: Path) -> dict[str, tuple[list[str], list[str]]]:
    folder = datasets_dir / "text" / "trec"
    return {"train": read_trec(folder / "train_5500.label"), "test": read_trec(folder / "TREC_10.label")}


@pytest.fixture
def trec_spec() -> ControlSpec:
    return ControlSpec("question", list(TREC_DESCRIPTIONS), descriptions=TREC_DESCRIPTIONS)
