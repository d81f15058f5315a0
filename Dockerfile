# Builds every service binary once; docker-compose.yml runs each service from this one image.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# The committed query cache (.sqlx/) checks SQL at build time without a database.
ENV SQLX_OFFLINE=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gateway-service --bin chat-worker --bin tts-worker \
        --bin health-data-service \
    && mkdir -p /out \
    && cp target/release/gateway-service target/release/chat-worker target/release/tts-worker \
          target/release/health-data-service /out/

FROM debian:bookworm-slim
# espeak-ng: the tts-worker's offline voice, so speech works with no provider key.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl espeak-ng \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 app \
    && mkdir -p /app/data/storage && chown -R app /app
COPY --from=build /out/ /usr/local/bin/
USER app
WORKDIR /app
ENV RUST_LOG=info
CMD ["gateway-service"]
