# Builds every service binary once; docker-compose.yml runs each service from this one image.
FROM rust:1-slim-bookworm AS build
# cmake and g++: ct2rs builds CTranslate2 (the tts-worker's offline transcription) from source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The committed query cache (.sqlx/) checks SQL at build time without a database.
ENV SQLX_OFFLINE=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gateway-service --bin chat-worker --bin tts-worker \
        --bin health-data-service --bin semantic-worker --bin media-worker --bin batch-worker \
    && mkdir -p /out \
    && cp target/release/gateway-service target/release/chat-worker target/release/tts-worker \
          target/release/health-data-service target/release/semantic-worker \
          target/release/media-worker target/release/batch-worker /out/

# The offline transcription model (Whisper tiny.en, 75 MB), fetched at build time by the same
# function as scripts/dev and scripts/test, never at run time.
FROM python:3.11-slim-bookworm AS models
WORKDIR /src
COPY scripts/lib.sh scripts/lib.sh
RUN STT__MODEL_DIR=/models/whisper-tiny.en bash -c '. scripts/lib.sh && ensure_whisper_model'
# The offline embedding model (all-MiniLM-L6-v2, int8 ONNX, 23 MB) and ONNX Runtime's
# libonnxruntime.so (35 MB; needs only glibc and libstdc++), the same way.
RUN SEMANTIC__MODEL_DIR=/models/all-minilm-l6-v2 ORT_DYLIB_PATH=/models/lib/libonnxruntime.so.1.32.0 \
    bash -c '. scripts/lib.sh && ensure_embedding_model && ensure_onnxruntime'

FROM debian:bookworm-slim
# espeak-ng: the tts-worker's offline voice, so speech works with no provider key; libstdc++6:
# the C++ runtime of its offline transcription engine (CTranslate2, linked in statically) and of
# ONNX Runtime (the semantic-worker's offline embeddings).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl espeak-ng libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 app \
    && mkdir -p /app/data/storage /app/data/semantic && chown -R app /app
COPY --from=build /out/ /usr/local/bin/
COPY --from=models /models/whisper-tiny.en /opt/models/whisper-tiny.en
ENV STT__MODEL_DIR=/opt/models/whisper-tiny.en
COPY --from=models /models/all-minilm-l6-v2 /opt/models/all-minilm-l6-v2
COPY --from=models /models/lib/libonnxruntime.so.1.32.0 /opt/lib/libonnxruntime.so.1.32.0
ENV SEMANTIC__MODEL_DIR=/opt/models/all-minilm-l6-v2 \
    ORT_DYLIB_PATH=/opt/lib/libonnxruntime.so.1.32.0
USER app
WORKDIR /app
ENV RUST_LOG=info
CMD ["gateway-service"]
