"""The attack corpus the backends must survive: wrong types at every JSON path, malformed and deeply nested bodies,
hostile label configs, SSRF and traversal URLs (the backslash forms included), broken and oversized media.

`corpus(backend, ls, other)` yields `Probe`s; `ls` is the address that plays Label Studio (it holds the API key's
media), `other` the same server under another host name, which must never see the key.
"""
from __future__ import annotations

import copy
import io
import json
import struct
import wave
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

TOKEN = "fuzz-secret-token-0123456789abcdef01234567"

TEXT = ('<View><Text name="text" value="$text"/><Choices name="topic" toName="text" choice="single">'
        '<Choice value="Sports"/><Choice value="Politics"/><Choice value="Science"/></Choices></View>')
BOXES = ('<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
         '<Label value="Person"/><Label value="Bus"/></RectangleLabels></View>')
MASKS = ('<View><Image name="image" value="$image"/>'
         '<BrushLabels name="mask" toName="image"><Label value="Person"/><Label value="Bus"/></BrushLabels>'
         '<KeyPointLabels name="point" toName="image" smart="true"><Label value="Person"/><Label value="Bus"/>'
         '</KeyPointLabels></View>')
AUDIO = ('<View><Audio name="audio" value="$audio"/>'
         '<TextArea name="transcription" toName="audio" rows="4" editable="true" maxSubmissions="1"/></View>')
SPANS = ('<View><Labels name="label" toName="text"><Label value="PER"/><Label value="ORG"/><Label value="LOC"/>'
         '</Labels><Text name="text" value="$text"/></View>')
PHOTO_CLASSES = ('<View><Image name="image" value="$image"/><Choices name="kind" toName="image" choice="single">'
                 '<Choice value="Person"/><Choice value="Bus"/><Choice value="Dog"/></Choices></View>')
OCR = ('<View><Image name="image" value="$image"/><Labels name="label" toName="image"><Label value="Text"/>'
       '</Labels><Rectangle name="bbox" toName="image"/><TextArea name="transcription" toName="image" '
       'perRegion="true" editable="true"/></View>')
FACE_POINTS = ('<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
               '<Label value="Face"/></RectangleLabels><KeyPointLabels name="kp" toName="image">'
               '<Label value="nose_tip"/><Label value="elbow"/></KeyPointLabels></View>')
# every backend of the registry must be here (the test is parametrized by the registry)
CONFIGS = {"text_cls": (TEXT, "text", "Who won the match yesterday?"), "detection": (BOXES, "image", "/data/upload/1/bus.jpg"),
           "segmentation": (MASKS, "image", "/data/upload/1/bus.jpg"), "asr": (AUDIO, "audio", "/data/upload/1/tone.wav"),
           "ner": (SPANS, "text", "Angela Merkel met the board of Siemens in Paris \U0001F600 today."),
           "image_cls": (PHOTO_CLASSES, "image", "/data/upload/1/bus.jpg"),
           "ocr": (OCR, "image", "/data/upload/1/bus.jpg"),
           "keypoints": (FACE_POINTS, "image", "/data/upload/1/bus.jpg")}

# Values put in place of every field of a valid request.
WRONG = [None, 0, -1, 1.5e308, True, "", "x", "9" * 300, "\ud800", [], [[]], {}, {"a": 1}, ["x"] * 3]


@dataclass
class Probe:
    """One request: `body` is JSON-encoded unless it is bytes."""

    name: str
    method: str
    path: str
    body: Any = None
    content_type: str = "application/json"

    def data(self) -> bytes | None:
        if self.body is None:
            return None
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode("utf-8", "surrogatepass")


def media_files(bus_jpg: bytes) -> dict[str, bytes]:
    """What the fake Label Studio serves under /data/upload/1/."""
    return {"bus.jpg": bus_jpg, "tone.wav": _tone_wav(), "broken.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
            "empty.png": b"", "truncated.jpg": bus_jpg[: len(bus_jpg) // 3], "bomb.png": _png_header(100_000, 100_000),
            "wide.png": _png_header(1_000_000, 1), "garbage.wav": b"RIFF\xff\xff\xff\xffWAVEfmt " + b"\x00" * 64,
            "text.txt": b"not an image at all"}


def _tone_wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming a huge image, then one tiny IDAT: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key path of a JSON value (lists by their first item)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list) and value:
        yield from _paths(value[0], prefix + (0,))


def _replace(value: Any, path: tuple, new: Any) -> Any:
    out = copy.deepcopy(value)
    if not path:
        return new
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = new
    return out


def _media_values(ls: str, other: str) -> list[str]:
    ls_host, other_host = ls.split("//")[1], other.split("//")[1]
    return [
        f"http://{other_host}\\@{ls_host}/data/upload/1/bus.jpg",  # urllib says Label Studio, urllib3 says other
        f"http://{other_host}\\\\@{ls_host}/data/upload/1/bus.jpg",
        f"http://{other_host}%5C@{ls_host}/data/upload/1/bus.jpg",
        f"http://x@{ls_host}/data/upload/1/bus.jpg",
        f"http://{ls_host}@{other_host}/data/upload/1/bus.jpg",
        f"{ls}/redirect?to={other}/data/upload/1/bus.jpg",
        f"{ls}/redirect?to=http://{other_host}%5C@{ls_host}/data/upload/1/bus.jpg",
        "/data/upload/../../api/projects/1/", "/data/upload/%2e%2e/%2e%2e/api/current-user/whoami",
        f"{ls}/api/projects/1/", "/api/projects/1/",
        "file:///etc/passwd", "/etc/passwd", "//localhost/etc/passwd", "gopher://127.0.0.1:6379/_INFO",
        "http://169.254.169.254/latest/meta-data/", "http://[::1]:1/x", "http://2130706433/x", "http://0x7f.1/x",
        "s3://bucket/key.jpg", "data:image/png;base64,iVBORw0KGgo=", "http://", "http://:80/x", "ftp://x/y",
        "/data/local-files/?d=../../etc/passwd", "/data/local-files/?d=/etc/passwd",
        f"{ls}/trickle", f"{ls}/loop", f"{ls}/big",
    ] + [f"/data/upload/1/{name}" for name in ("broken.png", "empty.png", "truncated.jpg", "bomb.png", "wide.png",
                                                 "garbage.wav", "text.txt", "missing.jpg")]


def _hostile_configs(name: str) -> list[str]:
    config, key, _ = CONFIGS[name]
    many = "".join(f'<Choice value="c{i}"/>' for i in range(10_000))
    return [
        "", "not xml", "<View>", "<View/>", "<View><Text name='t' value='$t'/></View>", config.replace("$", ""),
        config.replace(f'name="{key}"', 'name=""'), config * 2, "<" * 10_000,
        f'<View><Text name="t" value="$t"/><Choices name="c" toName="t">{many}</Choices></View>',
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
        '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="&d;"/></Choices></View>',
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="&e;"/></Choices></View>',
        "<View>" * 5000 + "</View>" * 5000,
        config.replace("<View>", '<View><Image name="x" value="$x" model_path="/etc/passwd"/>'),
        config.replace('name="box"', 'name="box" model_path="../../../../etc/passwd"'),
        config.replace('name="box"', 'name="box" model_path="yolov8x.pt"'),
        config.replace('name="box"', 'name="box" model_score_threshold="abc"'),
    ]


def corpus(name: str, ls: str, other: str) -> Iterator[Probe]:
    """Every probe for backend `name`."""
    config, key, value = CONFIGS[name]
    task = {"id": 1, "data": {key: value}}
    bodies = {
        "/setup": {"project": "1.1", "schema": config, "hostname": ls, "access_token": TOKEN, "model_version": "x",
                   "extra_params": {}},
        "/predict": {"tasks": [task], "project": "1.1", "label_config": config, "params": {"context": None}},
        "/embed": {"tasks": [task], "project": "1.1", "label_config": config},
        "/webhook": {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": config},
                     "annotation": {"id": 1, "result": []}, "task": task},
        "/train": {"project": {"id": 1, "label_config": config}, "annotations": []},
        "/validate": {"config": config},
    }
    for path, body in bodies.items():
        for raw in (b"", b"{", b"null", b"[]", b"123", b'"s"', b"\xff\xfe\x00", b"[" * 60_000 + b"]" * 60_000,
                    b'{"a":' * 60_000 + b"1" + b"}" * 60_000, b'{"tasks": [' + b"{}," * 20_000 + b"{}]}"):
            yield Probe(f"{path} raw {raw[:12]!r}", "POST", path, raw)
        yield Probe(f"{path} text/plain", "POST", path, body, content_type="text/plain")
        for key_path in _paths(body):
            for wrong in WRONG:
                yield Probe(f"{path} {key_path}={wrong!r:.20}", "POST", path, _replace(body, key_path, wrong))
    for q in ("limit=abc", "limit=1e3", "limit=99999999999999999999", "limit=-1", "project=abc", "project=" + "9" * 300,
              "project=-1", "project=1&limit=0"):
        for path in ("/jobs", "/versions", "/health"):
            yield Probe(f"GET {path}?{q}", "GET", f"{path}?{q}")
    for cfg in _hostile_configs(name):
        yield Probe(f"/predict config {cfg[:30]!r}", "POST", "/predict", {**bodies["/predict"], "label_config": cfg})
        yield Probe(f"/setup config {cfg[:30]!r}", "POST", "/setup", {**bodies["/setup"], "schema": cfg})
    for media in _media_values(ls, other):
        tasks = [{"id": 1, "data": {key: media}}, task]  # the good task must still be predicted
        yield Probe(f"/predict media {media[:60]!r}", "POST", "/predict", {**bodies["/predict"], "tasks": tasks})
    for extra in ({"multi_threshold": "abc"}, {"uncertainty": "nope"}, {"retrain_every": "abc"}, {"imgsz": 100_000},
                  {"imgsz": -5}, {"model": "/etc/passwd"}, {"model": "../../x"}, {"C": "abc"}, {"C": -1},
                  {"min_examples": 10**12}, {"model_score_threshold": 7}):
        yield Probe(f"/setup extra {extra}", "POST", "/setup", {**bodies["/setup"], "project": "7.1", "extra_params": extra})
        yield Probe(f"/predict after extra {extra}", "POST", "/predict", {**bodies["/predict"], "project": "7.1"})
        yield Probe(f"/webhook after extra {extra}", "POST", "/webhook", {**bodies["/webhook"], "project": {"id": 7}})
    for params in ({"imgsz": 100_000}, {"imgsz": "big"}, {"uncertainty": "nope"}, {"context": "x"},
                   {"context": {"result": "x"}}, {"context": {"result": [{"type": "keypointlabels", "value": {}}]}}):
        yield Probe(f"/predict params {params}", "POST", "/predict", {**bodies["/predict"], "params": params})
    yield Probe("/predict lone surrogate task", "POST", "/predict",
                {**bodies["/predict"], "tasks": [{"id": 1, "data": {key: "\ud800 text"}}, task]})
    for action in ([], {}, None, 1, "START_TRAINING", "PROJECT_DELETED", "x" * 10_000):
        yield Probe(f"/webhook action {action!r:.20}", "POST", "/webhook", {**bodies["/webhook"], "action": action})
