"""The asr backend through the HTTP protocol (Flask's test client) with the real tiny.en weights: whole-file and
segment-level configs, per-task errors, training on corrected transcripts and serving the adapted version."""
from __future__ import annotations

import dataclasses

import pytest

from asr.metrics import wer
from backends.adapters.asr import ASRAdapter
from backends.transcripts import reference_text, transcript_layout
from backends.app import create_app
from backends.base import LabeledTask
from backends.config import Settings
from backends.exceptions import LabelloopError
from backends.media import MediaFetcher
from tests.asr.conftest import ffmpeg, speak
from tests.asr.test_adapt import NEW, TRAIN
from tests.backends.protocol import predict

pytestmark = pytest.mark.slow

WHOLE = ('<View><Audio name="audio" value="$audio"/>'
         '<TextArea name="transcription" toName="audio" rows="4" editable="true" maxSubmissions="1"/></View>')
SEGMENTS = ('<View><Labels name="labels" toName="audio"><Label value="Noise"/><Label value="Speech"/></Labels>'
            '<Audio name="audio" value="$audio" language="en"/><TextArea name="transcription" toName="audio" '
            'rows="2" editable="true" perRegion="true" required="true"/></View>')


@pytest.fixture
def settings(tmp_path, weights_dir, datasets_dir):
    return Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                    local_roots=(datasets_dir, tmp_path), retrain_every=100)


@pytest.fixture
def client(settings):
    return create_app("asr", settings).test_client()


def _predict(client, tasks, config=WHOLE, project="3.1700000000"):
    return predict(client, tasks, config, project)


def _clip(datasets_dir, name="LJ001-0009"):
    return str(datasets_dir / "speech" / "ljspeech" / "wavs" / f"{name}.flac")


def test_setup_accepts_both_layouts_and_explains_the_rest(client):
    for config in (WHOLE, SEGMENTS):
        r = client.post("/setup", json={"project": "3.1", "schema": config})
        assert r.status_code == 200 and r.json == {"model_version": "asr-base"}
    image = '<View><Image name="i" value="$img"/><TextArea name="t" toName="i"/></View>'
    r = client.post("/setup", json={"project": "3.1", "schema": image})
    assert r.status_code == 400 and "<Audio>" in r.json["error"] and "<TextArea>" in r.json["error"]
    no_labels = WHOLE.replace('maxSubmissions="1"', 'perRegion="true"')
    r = client.post("/setup", json={"project": "3.1", "schema": no_labels})
    assert r.status_code == 400 and "needs a <Labels toName='audio'>" in r.json["error"]
    labels_only = '<View><Audio name="a" value="$a"/><Labels name="l" toName="a"><Label value="S"/></Labels></View>'
    r = client.post("/setup", json={"project": "3.1", "schema": labels_only})
    assert r.status_code == 400 and "TextArea" in r.json["error"]
    assert transcript_layout(SEGMENTS).language == "en" and transcript_layout(SEGMENTS).label == "Speech"
    assert transcript_layout(WHOLE).language is None


def test_whole_transcripts_with_per_task_errors(client, datasets_dir, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    mute = tmp_path / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=1", "-c:v", "mpeg4", str(mute))
    tasks = [{"id": 1, "data": {"audio": _clip(datasets_dir)}},
             {"id": 2, "data": {"sound": "x"}},
             {"id": 3, "data": {"audio": str(empty)}},
             {"id": 4, "data": {"audio": "/etc/passwd"}},
             {"id": 5, "data": {"audio": str(mute)}},
             {"id": 6, "data": {"audio": 42}},
             {"id": 7, "data": {"audio": _clip(datasets_dir, "LJ001-0013")}}]
    body = _predict(client, tasks)
    assert body["model_version"] == "asr-base" and len(body["results"]) == 7
    first, last = body["results"][0], body["results"][6]
    item = first["result"][0]
    assert item["type"] == "textarea" and item["from_name"] == "transcription" and item["to_name"] == "audio"
    assert "movable types" in item["value"]["text"][0].lower()
    # the probability that the whole transcript is right, times its speaking-rate factor: 0.18 for this (right)
    # 19-word sentence read at 2.6 words/s
    assert 0.1 < first["score"] <= 1 and item["score"] == first["score"]
    assert "ugly ones" in last["result"][0]["value"]["text"][0].lower()
    errors = {i + 1: r.get("error", "") for i, r in enumerate(body["results"]) if "result" not in r}
    assert set(errors) == {2, 3, 4, 5, 6}
    assert "has no field 'audio'" in errors[2] and "empty file" in errors[3]
    assert "outside the local folders" in errors[4] and "no audio stream" in errors[5]
    assert "not an audio URL or path" in errors[6]


def test_segment_level_regions(client, datasets_dir, tmp_path):
    # two clips with a pause between: at least two Whisper segments, each a region with its own text
    joined = tmp_path / "two.wav"
    ffmpeg("-i", _clip(datasets_dir), "-i", _clip(datasets_dir, "LJ001-0013"), "-filter_complex",
           "[0:a]apad=pad_dur=2[a];[a][1:a]concat=n=2:v=0:a=1", "-ar", "16000", str(joined))
    body = _predict(client, [{"id": 9, "data": {"audio": str(joined)}}], config=SEGMENTS)
    pred = body["results"][0]
    regions = {}
    for item in pred["result"]:
        regions.setdefault(item["id"], {})[item["type"]] = item
    assert len(regions) >= 2 and all(set(r) == {"labels", "textarea"} for r in regions.values())
    spans = sorted((r["labels"]["value"]["start"], r["labels"]["value"]["end"]) for r in regions.values())
    assert all(0 <= s < e for s, e in spans) and spans[-1][1] > 9
    for r in regions.values():
        lab, text = r["labels"], r["textarea"]
        assert lab["from_name"] == "labels" and lab["value"]["labels"] == ["Speech"] and lab["to_name"] == "audio"
        assert text["from_name"] == "transcription" and text["value"]["text"][0]
        assert (lab["value"]["start"], lab["value"]["end"]) == (text["value"]["start"], text["value"]["end"])
        assert 0 <= lab["score"] <= 1 and text["score"] == lab["score"]
    assert 0 < pred["score"] <= 1
    # each segment is scored from its own words (both lie in one 30-second decoding window, which used to give
    # them one number), and the task is as uncertain as its least certain segment
    region_scores = [r["labels"]["score"] for r in regions.values()]
    assert len(set(region_scores)) == len(region_scores), region_scores
    assert pred["score"] == pytest.approx(min(region_scores))
    # the corrected transcript of such an annotation reads the regions in time order
    layout = transcript_layout(SEGMENTS)
    shuffled = sorted(pred["result"], key=lambda i: -i["value"]["start"])
    assert reference_text(layout, shuffled).lower().startswith("printing")


def test_training_on_corrections_publishes_a_version_that_is_served(client, tmp_path):
    app = client.application
    store, backend = app.config["STORE"], app.config["BACKEND"]
    examples = []
    for i, sentence in enumerate(TRAIN):
        wav = speak(sentence, tmp_path / f"t{i}.wav")
        examples.append(LabeledTask(task_id=i + 1, data={"audio": str(wav)}, annotation_id=i + 1, result=[
            {"from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": [sentence]}}]))
    examples.append(LabeledTask(task_id=99, data={"audio": "/nowhere/x.wav"}, result=[
        {"from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": ["x"]}}]))
    examples.append(LabeledTask(task_id=98, data={"audio": str(wav)}, result=[]))  # no transcript in it
    staging = store.stage(3)
    result = backend.fit(examples, WHOLE, backend.load_model(None), staging,
                         media=MediaFetcher(app.config["SETTINGS"]))
    print("fit:", result)
    assert result.publish, result.reason
    assert result.n_examples == len(TRAIN) and result.metrics["skipped"] == 2
    assert result.metrics["wer_after"] < result.metrics["wer_before"]
    assert result.metrics["vocabulary_size"] >= 3 and "n_rules" in result.metrics
    store.publish(3, staging, {"n_examples": result.n_examples, "metrics": result.metrics})
    new = speak(NEW[2], tmp_path / "new.wav")  # "Please move the Kubeflow notebooks to Zorbitron."
    before = _predict(client, [{"id": 1, "data": {"audio": str(new)}}], project="4.1")
    after = _predict(client, [{"id": 1, "data": {"audio": str(new)}}], project="3.1")
    assert before["model_version"] == "asr-base" and after["model_version"] == "asr-v1"
    text = after["results"][0]["result"][0]["value"]["text"][0]
    base_text = before["results"][0]["result"][0]["value"]["text"][0]
    assert "Kubeflow" in text and "Kubeflow" not in base_text, (text, base_text)
    assert wer([NEW[2]], [text]) < wer([NEW[2]], [base_text]) - 0.2


def test_the_base_model_comes_from_the_settings(monkeypatch):
    """ASR_MODEL is read once, into Settings; the adapter asks for that model (here one that does not exist)."""
    monkeypatch.setenv("ASR_MODEL", "tiny.en")  # the process environment is not read by the adapter
    backend = ASRAdapter(Settings.from_env({"ASR_MODEL": "no-such-size"}))
    with pytest.raises(LabelloopError, match="faster-whisper-no-such-size"):
        backend.transcriber()


def test_strategies_asr_cannot_score_by_are_refused(client, datasets_dir):
    """least_confidence (and the batch strategies built on it) rank by the word confidence; margin and entropy need
    the probabilities of words Whisper did not choose: a 400 that says so, at /predict and at /setup."""
    task = [{"id": 1, "data": {"audio": _clip(datasets_dir, "LJ001-0013")}}]

    def ask(params):
        return client.post("/predict", json={"tasks": task, "project": "5.1", "label_config": WHOLE,
                                             "params": params})

    ok = ask({"uncertainty": "least_confidence"})
    assert ok.status_code == 200 and 0 < ok.json["results"][0]["score"] <= 1
    for name in ("margin", "entropy", "badge"):
        r = ask({"uncertainty": name})
        assert r.status_code == 400, r.json
        assert f"asr cannot rank by '{name}'" in r.json["error"] and "least_confidence" in r.json["error"]
    r = ask({"uncertainty": "nope"})
    assert r.status_code == 400 and "unknown selection strategy 'nope'" in r.json["error"]
    assert "margin" in r.json["error"]  # the known names are listed
    r = client.post("/setup", json={"project": "5.1", "schema": WHOLE, "extra_params": {"uncertainty": "entropy"}})
    assert r.status_code == 400 and "entropy" in r.json["error"]


@pytest.mark.parametrize("params,field", [({"beam_size": "abc"}, "beam_size"), ({"beam_size": 1000}, "beam_size"),
                                          ({"chunk_s": 1e9}, "chunk_s"), ({"language": "xx"}, "language")])
def test_bad_decoding_params_are_400s_naming_the_field(client, datasets_dir, params, field):
    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"audio": _clip(datasets_dir)}}], "project": "5.1",
                                      "label_config": WHOLE, "params": params})
    assert r.status_code == 400 and repr(field) in r.json["error"], r.json


def test_a_file_over_max_audio_seconds_is_that_tasks_error(settings, datasets_dir, tmp_path):
    client = create_app("asr", settings.with_overrides(max_audio_seconds=5)).test_client()
    short = speak("Seven eight nine.", tmp_path / "short.wav")
    body = _predict(client, [{"id": 1, "data": {"audio": _clip(datasets_dir)}},  # ~8 s
                             {"id": 2, "data": {"audio": str(short)}}])
    first, second = body["results"]
    assert "result" not in first and "LJ001-0009.flac is 8 s long; the limit is 5 s;" in first["error"]
    assert "MAX_AUDIO_SECONDS" in first["error"]
    heard = second["result"][0]["value"]["text"][0].lower()
    assert "8" in heard or "eight" in heard, heard  # Whisper writes the number either way


def test_max_audio_seconds_comes_from_the_environment():
    assert Settings.from_env({}).max_audio_seconds == 3 * 3600
    assert Settings.from_env({"MAX_AUDIO_SECONDS": "600"}).max_audio_seconds == 600
    with pytest.raises(ValueError, match="MAX_AUDIO_SECONDS must be an integer"):
        Settings.from_env({"MAX_AUDIO_SECONDS": "3h"})


@pytest.mark.parametrize("model", ["/etc/passwd", "../../x", "faster-whisper-tiny.en/../..", "~/.ssh", "nope", 7])
def test_a_projects_model_is_a_whisper_name_or_an_allowed_weights_folder(client, datasets_dir, model):
    r = client.post("/setup", json={"project": "3.1", "schema": WHOLE, "extra_params": {"model": model}})
    assert r.status_code == 400 and "'model' must be a Whisper model name" in r.json["error"], r.json
    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"audio": _clip(datasets_dir)}}],
                                      "label_config": WHOLE, "project": "3.1", "params": {"model": model}})
    assert r.status_code == 400 and "'model'" in r.json["error"]


def test_a_whisper_name_or_weights_folder_is_accepted(client, settings):
    for model in ("tiny.en", "faster-whisper-tiny.en"):
        r = client.post("/setup", json={"project": "3.1", "schema": WHOLE, "extra_params": {"model": model}})
        assert r.status_code == 200, r.json
    allowed = create_app("asr", dataclasses.replace(settings, allowed_weights=("faster-whisper-*",))).test_client()
    r = allowed.post("/setup", json={"project": "3.1", "schema": WHOLE,
                                     "extra_params": {"model": "faster-whisper-tiny.en"}})
    assert r.status_code == 200


def test_health_lists_the_measures_asr_can_score_by(client):
    assert client.get("/health").json["measures"] == ["least_confidence"]
