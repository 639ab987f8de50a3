# syntax=docker/dockerfile:1
# One image per voteflow binary, all from one build (scripts/gke images builds the five):
#   docker build --platform linux/amd64 --build-arg BIN=rest-server -t .../rest-server:COMMIT .
# BIN is one of rest-client, rest-server, grpc-client, grpc-server, consumer. Docker keys
# every RUN after an ARG on the ARG's value, so BIN is declared only in the last stage: the
# five builds share the dependency layer and the workspace build, and differ in one COPY.
# Stages: plan (the dependency recipe), build (dependencies in their own cached layer, then
# every binary), runtime (Debian slim, the one binary, a non-root user).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# gcc, make and zlib build the bundled librdkafka; nothing else is needed (protox
# compiles the .proto files without protoc).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential zlib1g-dev \
 && rm -rf /var/lib/apt/lists/* \
 && cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
# Only the dependencies: this layer is reused until Cargo.toml or Cargo.lock changes.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bins -p voteflow-producer-rest -p voteflow-producer-grpc -p voteflow-consumer \
 && mkdir /bins \
 && cp target/release/rest-client target/release/rest-server target/release/grpc-client \
       target/release/grpc-server target/release/consumer /bins/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin voteflow
# Settings come from env vars (`--help` lists them). Inside a pod every service listens on
# all interfaces; each binary reads only its own variables, so setting all is harmless.
ENV REST_CLIENT_LISTEN=0.0.0.0:8000 \
    REST_SERVER_LISTEN=0.0.0.0:8080 \
    GRPC_CLIENT_LISTEN=0.0.0.0:3000 \
    GRPC_SERVER_LISTEN=0.0.0.0:3001 \
    GRPC_SERVER_ADMIN_LISTEN=0.0.0.0:9301 \
    CONSUMER_ADMIN_LISTEN=0.0.0.0:9100 \
    LOG_FORMAT=json
ARG BIN
RUN test -n "${BIN}" || { echo "build with --build-arg BIN=rest-client|rest-server|grpc-client|grpc-server|consumer" >&2; exit 1; }
LABEL org.opencontainers.image.source="https://github.com/voteflow/voteflow" \
      org.opencontainers.image.description="voteflow ${BIN}"
COPY --from=build /bins/${BIN} /usr/local/bin/voteflow-service
USER 10001
ENTRYPOINT ["/usr/local/bin/voteflow-service"]
