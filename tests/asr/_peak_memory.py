"""Run in a subprocess by test_long_audio.py: transcribe one file, print the transcript and this process's peak RSS."""
from __future__ import annotations

import json
import resource
import sys
import time

from asr.engine import DecodeOptions, get_transcriber

t0 = time.monotonic()
transcriber = get_transcriber(None, sys.argv[2])
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = transcriber.transcribe(sys.argv[1], DecodeOptions(chunk_s=float(sys.argv[3]) or None))  # 0: the default chunk
print(json.dumps({"text": t.text, "duration": t.duration, "segments": [[s.start, s.end] for s in t.segments],
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "loaded_kib": loaded,
                  "seconds": time.monotonic() - t0}))
