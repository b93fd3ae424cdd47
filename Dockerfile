# Two binaries in one image: `portico` (the gateway) and `portico-transcoder`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin portico --bin portico-transcoder

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data portico \
 && mkdir -p /data && chown portico /data
COPY --from=build /src/target/release/portico /src/target/release/portico-transcoder /usr/local/bin/
USER portico
VOLUME /data
EXPOSE 8080
CMD ["portico", "serve"]
