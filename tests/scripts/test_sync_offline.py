"""sync.py without a Label Studio: the command line, config errors, ranking, face blurring (agreement:
test_agreement.py)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import selection
from scripts.labelloop_sync import config as config_mod
from scripts.labelloop_sync.cli import build_parser, main
from scripts.labelloop_sync.errors import ConfigError
from scripts.labelloop_sync.export import audio_duration
from scripts.labelloop_sync.rank import STRATEGIES as RANK_STRATEGIES
from scripts.labelloop_sync.rank import first_label
from ops.services import ROOT, free_port

SYNC = [sys.executable, str(ROOT / "scripts" / "sync.py")]
COMMANDS = ["setup", "import", "predict", "rank", "retrain", "export", "status"]


def test_every_command_has_help(capsys):
    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([command, "--help"])
        assert done.value.code == 0
        assert "usage: sync.py " + command in capsys.readouterr().out


def test_unreachable_label_studio_is_one_line_and_non_zero():
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run([*SYNC, "status", "--project", "1", "--url", url, "--api-key", "x" * 40],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot reach Label Studio at {url}" in proc.stderr


def test_missing_api_key_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert main(["--url", "http://127.0.0.1:1", "--api-key", "", "status", "--project", "1"]) == 2
    assert "no API key" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("title: [unclosed", "not valid YAML at line 1"),
    ("title: ok title\ntemplate: text_cls\nlabels: [a]\ncolour: red\n", "unknown keys ['colour']"),
    ("title: ok title\ntemplate: text_cls\n", "needs a non-empty 'labels'"),
    ("title: ok title\ntemplate: video\nlabels: [a]\n", "unknown template 'video'"),
    ("title: ok title\nlabel_config: <View/>\ntemplate: asr\n", "exactly one of"),
    ("title: ok title\ntemplate: asr\nml_backends: [{url: 'ftp://x'}]\n", "url must be an http(s) URL"),
    ("title: ok title\ntemplate: asr\noverlap: {maximum_annotations: 0}\n", "maximum_annotations must be >= 1"),
    ("title: ok title\ntemplate: asr\nml_backends: [{url: 'http://x', auth: {user: u, password: '${NOPE_X}'}}]\n",
     "environment variable NOPE_X is not set"),
    ("title: ok title\ntemplate: asr\nml_backends: [{url: 'http://x', extra_params: {uncertainty: most}}]\n",
     "ml_backends[0].extra_params.uncertainty: unknown selection strategy 'most'; choose one of: badge"),
])
def test_invalid_config_is_explained(tmp_path, capsys, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="invalid config"):
        config_mod.load(path)
    # through the command line: one line, exit 2, before any connection is tried
    assert main(["--url", "http://127.0.0.1:1", "--api-key", "k" * 40, "setup", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_examples_are_valid(monkeypatch):
    monkeypatch.setenv("BACKEND_PASS", "secret")
    for name in ("text_cls", "detection", "segmentation", "asr"):
        cfg = config_mod.load(ROOT / "examples" / f"{name}.yaml")
        assert cfg.backends and cfg.label_config.startswith("<View>")
    text = config_mod.load(ROOT / "examples" / "text_cls.yaml")
    assert text.maximum_annotations == 2 and text.backends[0].password == "secret"
    assert text.backends[0].auth_header() == "Basic bGFiZWwtc3R1ZGlvOnNlY3JldA=="


def test_rank_offers_the_strategies_it_can_feed_and_defaults_to_the_measured_best():
    # rank has the backend's confidences, embeddings and predicted labels, not class probabilities: no BADGE
    assert {"class_balanced", "hybrid", "kcenter", "margin", "typiclust"} <= set(RANK_STRATEGIES)
    assert set(selection.STRATEGIES) - set(RANK_STRATEGIES) == {"badge"}
    args = build_parser().parse_args(["rank", "--project", "1"])
    assert args.strategy is None and selection.DEFAULT in RANK_STRATEGIES  # None: rank.run uses the default
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rank", "--project", "1", "--strategy", "badge"])


def test_first_label_is_the_class_rank_balances_over():
    assert first_label([{"type": "choices", "value": {"choices": ["Human", "Location"]}}]) == "Human"
    assert first_label([{"type": "taxonomy", "value": {"taxonomy": [["Animal", "Dog"]]}}]) == "Animal / Dog"
    assert first_label([{"type": "rectanglelabels", "value": {"x": 1, "rectanglelabels": ["car"]}}]) == "car"
    assert first_label([{"type": "choices", "value": {"choices": []}}]) is None and first_label(None) is None


def test_blur_faces_on_a_real_photo(datasets_dir):
    import cv2

    from scripts.labelloop_sync.faces import blur_file_bytes, detect_faces

    path = datasets_dir / "coco128/images/train2017/000000000036.jpg"  # a person facing the camera
    raw = path.read_bytes()
    image = cv2.imread(str(path))
    faces = detect_faces(image)
    assert faces, "OpenCV's cascade finds the face in this photo"
    blurred_bytes, n = blur_file_bytes(raw, ".jpg")
    assert n == len(faces)
    blurred = cv2.imdecode(np.frombuffer(blurred_bytes, np.uint8), cv2.IMREAD_COLOR)
    x, y, w, h = faces[0]
    before = cv2.Laplacian(cv2.cvtColor(image[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    after = cv2.Laplacian(cv2.cvtColor(blurred[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert after < before * 0.1, (before, after)  # the face region lost its detail
    assert not detect_faces(blurred), "no face is found any more"
    # far from the face the photo is untouched (up to JPEG re-encoding)
    corner = (slice(0, 40), slice(0, 40)) if y > 80 else (slice(-40, None), slice(-40, None))
    assert np.abs(image[corner].astype(int) - blurred[corner].astype(int)).mean() < 3


def test_audio_duration_from_headers(datasets_dir, tmp_path):
    flac = sorted((datasets_dir / "speech/ljspeech").rglob("*.flac"))[0]
    seconds = audio_duration(flac)
    assert seconds is not None and 0.5 < seconds < 15
    import wave

    with wave.open(str(tmp_path / "a.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 12000)
    assert audio_duration(tmp_path / "a.wav") == 1.5
    assert audio_duration(tmp_path / "missing.wav") is None


def test_rank_scores_by_a_measure_the_backend_can_follow_and_says_so():
    from scripts.labelloop_sync.rank import _measure_for

    class Backend:
        def __init__(self, measures):
            self.measures = measures

        def health(self, project):
            assert project == 7  # the project's own measures: they depend on its label config
            return {"measures": self.measures} if self.measures is not None else {}

    assert _measure_for(Backend(None), 7, "margin", explicit=False) == ("margin", None)  # an older backend: all
    assert _measure_for(Backend(["least_confidence", "margin", "entropy"]), 7, "margin", False) == ("margin", None)
    measure, note = _measure_for(Backend(["least_confidence"]), 7, "margin", explicit=False)
    assert measure == "least_confidence" and "cannot score by margin" in note
    # what the user asked for is never swapped: the backend's 400 says why
    assert _measure_for(Backend(["least_confidence"]), 7, "margin", explicit=True) == ("margin", None)
