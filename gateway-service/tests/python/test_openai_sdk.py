#!/usr/bin/env python3
"""The official `openai` Python SDK, unmodified, against the gateway's OpenAI-compatible surface.

Needs a running gateway whose chat-worker answers `dummy` offline and serves `gpt-4o-mini` from
the provider simulator, whose tts-worker has no provider key, so espeak-ng speaks, whose
media-worker has no provider key, so the `dummy` image model draws PNG placeholders, and whose
batch-worker has no provider key, so the `dummy` model answers batch lines (paced, so that a
batch can be cancelled while it runs) (tests/python_sdk.rs starts exactly that). Environment:
GATEWAY_URL (e.g. http://127.0.0.1:8000), TOKEN (a JWT for the gateway) and, optionally,
SIM_URL (the simulator's root URL, to script provider failures; those checks are skipped without it)
and SPEECH (non-empty when espeak-ng is installed; the checks that speak are skipped without it).
Exits non-zero when a check fails; the last line is "N passed, M failed".
"""

import base64
import json
import os
import sys
import tempfile
import time
import traceback
import urllib.request

import openai

GATEWAY = os.environ["GATEWAY_URL"].rstrip("/")
TOKEN = os.environ["TOKEN"]
SIM = os.environ.get("SIM_URL", "").rstrip("/")
SPEECH = bool(os.environ.get("SPEECH"))

client = openai.OpenAI(base_url=f"{GATEWAY}/v1", api_key=TOKEN, max_retries=0, timeout=30)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def test_non_streaming_completion():
    completion = client.chat.completions.create(
        model="dummy",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello from python"},
        ],
        temperature=0.3,
        max_tokens=50,
    )
    check(completion.object == "chat.completion", completion.object)
    check(completion.id.startswith("chatcmpl-"), completion.id)
    choice = completion.choices[0]
    check(choice.message.role == "assistant", choice.message.role)
    check(
        choice.message.content.startswith("Echo: hello from python"),
        repr(choice.message.content),
    )
    check(choice.finish_reason == "stop", choice.finish_reason)
    check(completion.usage is not None and completion.usage.completion_tokens > 0, completion.usage)
    check(
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens,
        completion.usage,
    )


def test_streaming_completion():
    stream = client.chat.completions.create(
        model="dummy",
        messages=[{"role": "user", "content": "stream from python"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, ids = [], None, None, set()
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    answer = "".join(text)
    check(answer.startswith("Echo: stream from python"), repr(answer))
    check(finish == "stop", finish)
    check(usage is not None and usage.completion_tokens > 0, usage)
    check(len(ids) == 1, ids)


def test_models_list():
    models = client.models.list()
    ids = [m.id for m in models.data]
    check("dummy" in ids and "gpt-4o-mini" in ids, ids)
    owners = {m.id: m.owned_by for m in models.data}
    check(owners["gpt-4o-mini"] == "openai", owners)
    check(client.models.retrieve("mini").id == "gpt-4o-mini", "retrieve by alias")


def test_unknown_model_is_not_found():
    try:
        client.chat.completions.create(
            model="gpt-17", messages=[{"role": "user", "content": "hi"}]
        )
    except openai.NotFoundError as e:
        check(e.status_code == 404, e.status_code)
        check("gpt-17" in str(e), str(e))
        check(e.code == "model_not_found", e.code)
        return
    raise AssertionError("expected openai.NotFoundError")


def test_bad_token_is_authentication_error():
    bad = openai.OpenAI(base_url=f"{GATEWAY}/v1", api_key="not-a-jwt", max_retries=0)
    try:
        bad.models.list()
    except openai.AuthenticationError as e:
        check(e.status_code == 401, e.status_code)
        return
    raise AssertionError("expected openai.AuthenticationError")


def test_tool_call():
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "call_tool: what is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    choice = completion.choices[0]
    check(choice.finish_reason == "tool_calls", choice.finish_reason)
    call = choice.message.tool_calls[0]
    check(call.type == "function", call.type)
    check(call.function.name == "get_weather", call.function.name)
    check(json.loads(call.function.arguments) == {"location": "Paris"}, call.function.arguments)

    # The tool's result goes back; the model answers with text.
    follow_up = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": "call_tool: what is the weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"},
        ],
        tools=[WEATHER_TOOL],
    )
    check(follow_up.choices[0].finish_reason == "stop", follow_up.choices[0].finish_reason)
    check(bool(follow_up.choices[0].message.content), follow_up.choices[0].message)


def test_streamed_tool_call():
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "call_tool please"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    calls, finish = {}, None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    check(finish == "tool_calls", finish)
    check(calls[0]["name"] == "get_weather", calls)
    check(json.loads(calls[0]["arguments"]) == {"location": "Paris"}, calls)


class Skip(Exception):
    pass


def script_provider(behaviour):
    """Makes the simulator answer the next provider request with `behaviour`."""
    if not SIM:
        raise Skip("SIM_URL not set")
    request = urllib.request.Request(
        f"{SIM}/_sim/script",
        data=json.dumps(behaviour).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        check(response.status == 200, response.status)


def test_provider_rate_limit_is_rate_limit_error():
    script_provider({"kind": "rate_limited", "retry_after_secs": 2})
    try:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    except openai.RateLimitError as e:
        check(e.status_code == 429, e.status_code)
        check(e.response.headers.get("retry-after") is not None, dict(e.response.headers))
        return
    raise AssertionError("expected openai.RateLimitError")


def test_provider_failure_before_streaming_is_an_http_error():
    script_provider({"kind": "server_error"})
    try:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        for _ in stream:
            pass
    except openai.InternalServerError as e:
        check(e.status_code == 502, e.status_code)
        return
    raise AssertionError("expected openai.InternalServerError")


def test_provider_failure_mid_stream_raises_api_error():
    script_provider({"kind": "drop_mid_stream", "after_chunks": 2})
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received = []
    try:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    received.append(choice.delta.content)
    except openai.APIError as e:
        check(received, "the error came before any content")
        check(not isinstance(e, openai.APIStatusError), type(e))
        return
    raise AssertionError(f"expected openai.APIError after {received!r}")


def require_speech():
    if not SPEECH:
        raise Skip("SPEECH not set (espeak-ng is not installed)")


def check_wav(data):
    check(data[:4] == b"RIFF" and data[8:12] == b"WAVE", data[:12])
    check(len(data) > 10_000, len(data))


def test_speech_create():
    require_speech()
    # An OpenAI model and voice: with no OpenAI key the server's default provider speaks.
    response = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input="Hello from the official Python SDK.",
        response_format="wav",
    )
    check(response.response.headers["content-type"] == "audio/wav", response.response.headers)
    check_wav(response.content)


def test_speech_streaming_response():
    require_speech()
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts",
        voice="coral",
        input="Streamed to the client while it is spoken, piece by piece.",
        response_format="wav",
    ) as response:
        check(response.status_code == 200, response.status_code)
        check(response.headers["content-type"] == "audio/wav", response.headers)
        pieces = [piece for piece in response.iter_bytes() if piece]
    check(len(pieces) >= 1, pieces)
    check_wav(b"".join(pieces))


def test_speech_events():
    require_speech()
    response = client.audio.speech.create(
        model="gpt-4o-mini-tts",
        voice="alloy",
        input="Events.",
        response_format="pcm",
        extra_body={"stream_format": "sse"},
    )
    lines = response.content.decode().splitlines()
    events = [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]
    check(events and events[-1]["type"] == "speech.audio.done", events[-1:])
    check(events[-1]["usage"]["input_tokens"] == 2, events[-1])
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    check(all(e["type"] == "speech.audio.delta" for e in events[:-1]), events)
    check(len(audio) > 1000 and audio[:4] != b"RIFF", len(audio))


def test_speech_mp3_without_an_mp3_provider_is_bad_request():
    # The SDK's default format; espeak-ng makes wav and pcm only.
    try:
        client.audio.speech.create(model="tts-1", voice="alloy", input="hi")
    except openai.BadRequestError as e:
        check(e.status_code == 400, e.status_code)
        check(e.code == "unsupported_option", e.code)
        check("mp3" in str(e), str(e))
        return
    raise AssertionError("expected openai.BadRequestError")


def test_speech_unknown_model_is_not_found():
    try:
        client.audio.speech.create(
            model="acme/voice-9", voice="alloy", input="hi", response_format="wav"
        )
    except openai.NotFoundError as e:
        check(e.status_code == 404, e.status_code)
        check(e.code == "model_not_found", e.code)
        return
    raise AssertionError("expected openai.NotFoundError")


def test_embeddings_default_base64_decoded_by_the_sdk():
    # The SDK asks for base64 when no format is named, and decodes little-endian float32.
    result = client.embeddings.create(
        model="all-minilm-l6-v2", input=["A cat sat on the mat.", "A kitten rested on the rug.", "Stock prices fell."]
    )
    check(len(result.data) == 3, result)
    check([d.index for d in result.data] == [0, 1, 2], result)
    vectors = [d.embedding for d in result.data]
    check(all(len(v) == 384 for v in vectors), [len(v) for v in vectors])
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    check(abs(dot(vectors[0], vectors[0]) - 1.0) < 1e-3, dot(vectors[0], vectors[0]))
    check(dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]) + 0.2, "related texts are closer")
    check(result.model == "all-minilm-l6-v2", result.model)
    check(result.usage.prompt_tokens > 0, result.usage)


def test_embeddings_float_matches_base64():
    as_float = client.embeddings.create(model="default", input="hello world", encoding_format="float")
    as_b64 = client.embeddings.create(model="default", input="hello world")
    check(len(as_float.data[0].embedding) == 384, len(as_float.data[0].embedding))
    diff = max(abs(a - b) for a, b in zip(as_float.data[0].embedding, as_b64.data[0].embedding))
    check(diff < 1e-6, diff)


def test_embeddings_unknown_model_is_not_found():
    try:
        client.embeddings.create(model="no-such-embedding-model", input="x")
    except openai.NotFoundError as e:
        check(e.body["code"] == "model_not_found", e.body)
    else:
        raise AssertionError("an unknown model was accepted")


def test_embeddings_dimensions_the_model_cannot_give_is_bad_request():
    try:
        client.embeddings.create(model="all-minilm-l6-v2", input="x", dimensions=64)
    except openai.BadRequestError as e:
        check(e.body["code"] == "unsupported_option", e.body)
    else:
        raise AssertionError("dimensions were accepted")


def png_size(data):
    check(data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16])
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_images_generate_answers_b64_json_by_default():
    result = client.images.generate(
        model="dummy", prompt="A lighthouse drawn for the official SDK", size="256x256"
    )
    check(result.created > 0, result.created)
    check(len(result.data) == 1, result)
    image = result.data[0]
    check(image.url is None, image.url)
    check(png_size(base64.b64decode(image.b64_json)) == (256, 256), "a 256x256 PNG")
    check(result.output_format == "png", result.output_format)
    check(result.size == "256x256", result.size)


def test_images_generate_as_urls():
    result = client.images.generate(
        model="dummy", prompt="Two kites", size="256x256", n=2, response_format="url"
    )
    check(len(result.data) == 2, result)
    for image in result.data:
        check(image.b64_json is None, "no base64 with response_format url")
        check(image.url.startswith(GATEWAY + "/"), image.url)
        # The URL is signed: it opens without a token, as in a browser's <img src>.
        with urllib.request.urlopen(image.url, timeout=30) as response:
            check(response.headers["content-type"] == "image/png", response.headers)
            check(png_size(response.read()) == (256, 256), "a 256x256 PNG")


def test_images_unknown_model_is_not_found():
    try:
        client.images.generate(model="picasso-9", prompt="x")
    except openai.NotFoundError as e:
        check(e.code == "model_not_found", e.code)
        check(e.param == "model", e.param)
    else:
        raise AssertionError("an unknown image model was accepted")


def test_images_size_the_model_cannot_make_is_bad_request():
    try:
        client.images.generate(model="dummy", prompt="x", size="5000x5000")
    except openai.BadRequestError as e:
        check(e.code == "unsupported_option", e.code)
        check(e.param == "size", e.param)
    else:
        raise AssertionError("a size the model cannot make was accepted")


BATCH_ENDED = ("completed", "failed", "expired", "cancelled")


def batch_input(questions):
    """A batch input file (JSONL) asking the `dummy` model each question; its path."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for custom_id, question in questions.items():
            line = {
                "custom_id": custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "dummy", "messages": [{"role": "user", "content": question}]},
            }
            f.write(json.dumps(line) + "\n")
        return f.name


def upload_batch_input(questions):
    path = batch_input(questions)
    try:
        with open(path, "rb") as f:
            return client.files.create(file=f, purpose="batch")
    finally:
        os.unlink(path)


def wait_for_batch(batch_id, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in BATCH_ENDED:
            return batch
        check(time.monotonic() < deadline, f"batch {batch_id} still {batch.status}")
        time.sleep(0.2)


def test_batch_runs_to_completion():
    # The dummy echoes the first words of the question.
    questions = {f"question-{i}": f"{word} please" for i, word in
                 enumerate(["otters", "comets", "bridges", "violins"])}
    uploaded = upload_batch_input(questions)
    check(uploaded.object == "file" and uploaded.purpose == "batch", uploaded)
    check(uploaded.id.startswith("file-"), uploaded.id)
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"suite": "sdk"},
    )
    check(batch.object == "batch" and batch.id.startswith("batch_"), batch)
    check(batch.status == "validating", batch.status)
    check(batch.metadata == {"suite": "sdk"}, batch.metadata)
    done = wait_for_batch(batch.id)
    check(done.status == "completed", done)
    check(done.request_counts.total == len(questions), done.request_counts)
    check(done.request_counts.completed == len(questions), done.request_counts)
    check(done.output_file_id, done)
    text = client.files.content(done.output_file_id).text
    answered = {}
    for raw in text.splitlines():
        if raw.strip():
            line = json.loads(raw)
            answered[line["custom_id"]] = line
    check(set(answered) == set(questions), sorted(answered))
    for custom_id, question in questions.items():
        response = answered[custom_id]["response"]
        check(response["status_code"] == 200, response)
        content = response["body"]["choices"][0]["message"]["content"]
        check(question.split()[0] in content, (custom_id, content))
    # The lists see both, the SDK paging through them.
    check(batch.id in [b.id for b in client.batches.list(limit=1)], "batch not listed")
    file_ids = [f.id for f in client.files.list()]
    check(uploaded.id in file_ids and done.output_file_id in file_ids, file_ids)
    output = client.files.retrieve(done.output_file_id)
    check(output.purpose == "batch_output", output.purpose)
    # An ended batch cannot be cancelled.
    try:
        client.batches.cancel(batch.id)
    except openai.ConflictError:
        pass
    else:
        raise AssertionError("an ended batch was cancelled")


def test_batch_cancel():
    questions = {f"q-{i}": f"question number {i}" for i in range(60)}
    uploaded = upload_batch_input(questions)
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelling = client.batches.cancel(batch.id)
    check(cancelling.id == batch.id, cancelling)
    check(cancelling.status == "cancelling", cancelling.status)
    check(cancelling.cancelling_at is not None, cancelling)
    done = wait_for_batch(batch.id)
    check(done.status == "cancelled", done.status)
    check(done.cancelled_at is not None, done)
    check(done.request_counts.completed < len(questions), done.request_counts)


def test_batch_refusals_name_the_parameter():
    path = batch_input({"a": "hi"})
    try:
        with open(path, "rb") as f:
            client.files.create(file=f, purpose="fine-tune")
    except openai.BadRequestError as e:
        check(e.param == "purpose", e.param)
    else:
        raise AssertionError("a fine-tune file was accepted")
    finally:
        os.unlink(path)
    uploaded = upload_batch_input({"a": "hi"})
    try:
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    except openai.BadRequestError as e:
        check(e.param == "endpoint", e.param)
        check("/v1/chat/completions" in str(e), str(e))
    else:
        raise AssertionError("an embeddings batch was accepted")
    try:
        client.batches.retrieve("batch_0000000000nope")
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("an unknown batch was found")
    deleted = client.files.delete(uploaded.id)
    check(deleted.deleted and deleted.id == uploaded.id, deleted)
    try:
        client.files.retrieve(uploaded.id)
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("a deleted file was found")


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Skip as e:
            print(f"skip {name}: {e}")
            continue
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"openai SDK {openai.__version__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
