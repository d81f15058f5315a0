#!/usr/bin/env python3
"""The official `openai` Python SDK, unmodified, transcribing through the gateway's
`/v1/audio/transcriptions`. Needs a running gateway whose tts-worker transcribes with the provider
simulator (tests/transcription.rs starts exactly that). Environment: GATEWAY_URL, TOKEN and WAV
(the path of a WAV recording). Exits non-zero when a check fails; the last line is
"N passed, M failed".
"""

import os
import sys
import traceback

import openai

GATEWAY = os.environ["GATEWAY_URL"].rstrip("/")
TOKEN = os.environ["TOKEN"]
WAV = os.environ["WAV"]
SAID = "The quick brown fox jumps over the lazy dog."

client = openai.OpenAI(base_url=f"{GATEWAY}/v1", api_key=TOKEN, max_retries=0, timeout=30)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def test_transcription_json():
    with open(WAV, "rb") as f:
        transcript = client.audio.transcriptions.create(model="whisper-1", file=f)
    check(transcript.text == SAID, transcript)


def test_transcription_srt():
    with open(WAV, "rb") as f:
        srt = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
    check(isinstance(srt, str), type(srt))
    check(srt.startswith("1\n00:00:"), srt)
    check("-->" in srt and "lazy dog" in srt, srt)


def test_transcription_verbose_json():
    with open(WAV, "rb") as f:
        verbose = client.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["segment"],
        )
    check(verbose.text == SAID, verbose)
    check(verbose.segments and verbose.segments[0].end > 0, verbose)


def test_transcription_stream():
    with open(WAV, "rb") as f:
        stream = client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        events = list(stream)
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    check(deltas == SAID, events)
    check(events[-1].type == "transcript.text.done" and events[-1].text == SAID, events)


def test_unknown_model_is_not_found():
    with open(WAV, "rb") as f:
        try:
            client.audio.transcriptions.create(model="nosuch/model", file=f)
        except openai.NotFoundError as e:
            check(e.body.get("param") == "model", e.body)
            return
    raise AssertionError("no NotFoundError")


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, test in tests:
        try:
            test()
            passed += 1
            print(f"ok {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            failed += 1
            print(f"FAILED {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
