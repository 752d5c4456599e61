# Slipway in a container: a release build, then a slim runtime image running as a non-root user.
# `git` pushes the environments' configuration repositories.
# The embedded PostgreSQL is not used here: docker-compose.yml provides a PostgreSQL service and
# DATABASE_URL.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/slipway /usr/local/bin/slipway

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/slipway --create-home slipway
COPY --from=build /usr/local/bin/slipway /usr/local/bin/slipway
# Numeric, so Kubernetes can check runAsNonRoot (the Helm chart runs it as 10001).
USER 10001
WORKDIR /var/lib/slipway
ENV SLIPWAY_LISTEN=0.0.0.0:8080 \
    SLIPWAY_DATA_DIR=/var/lib/slipway \
    SLIPWAY_LOG_FORMAT=json
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["slipway"]
CMD ["serve"]
