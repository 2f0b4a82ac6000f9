# syntax=docker/dockerfile:1
# Two images from one build:
#   docker build -t bc-sso-gateway .             the gateway (the default, last stage):
#                                                bc-sso-gateway serve | check | keygen | healthcheck
#   docker build --target dev -t bc-sso-dev .    the demo and the sandbox services (BigCommerce
#                                                emulator, dev IdP) that docker-compose.yml runs
# The gateway image holds no emulator and no dev IdP: its binary does not link them.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bc-sso-gateway -p bc-sso-dev \
    && mkdir -p /out \
    && cp target/release/bc-sso-gateway target/release/bc-sso-dev /out/

# Debian slim: CA certificates for the IdPs and BigCommerce; nothing else. Non-root.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/bcsso bcsso
WORKDIR /var/lib/bcsso
USER 10001:10001

FROM runtime AS dev
COPY --from=build /out/bc-sso-dev /usr/local/bin/bc-sso-dev
ENTRYPOINT ["bc-sso-dev"]
CMD ["--help"]

FROM runtime AS gateway
COPY --from=build /out/bc-sso-gateway /usr/local/bin/bc-sso-gateway
ENV BCSSO_SERVER_LISTEN=0.0.0.0:8080
EXPOSE 8080
# The binary's own check: the image needs no curl. Liveness only; a load balancer asks /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bc-sso-gateway", "healthcheck"]
ENTRYPOINT ["bc-sso-gateway"]
CMD ["serve"]
