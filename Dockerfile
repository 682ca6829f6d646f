# syntax=docker/dockerfile:1
# partwarden's container image.
#
#   docker build -t partwarden .
#   docker run --rm -e DATABASE_URL=postgres://partwarden@db:5432/app -p 9464:9464 partwarden
#
# Stage "build": the Rust toolchain builds the one binary from the locked dependencies.
# The SQL migrations are compiled into it (sqlx::migrate!), so the image needs no files
# besides the binary and its configuration.
# Stage "runtime": distroless `cc` (glibc, libgcc; no shell, no package manager), running
# as the unprivileged user 65532 ("nonroot" in distroless; numeric so that Kubernetes'
# runAsNonRoot can verify it).
#
# Configuration: /etc/partwarden/partwarden.toml (the documented default,
# config/partwarden.toml), found through PARTWARDEN_CONFIG. Mount your own file there (a
# Kubernetes ConfigMap at /etc/partwarden) or point PARTWARDEN_CONFIG elsewhere;
# PARTWARDEN__SECTION__KEY variables override single keys, and the database URL comes from
# DATABASE_URL or database.url_file (a mounted secret).
#
# Both base images are pinned by tag and use the same Debian release (bookworm, glibc
# 2.36), so the binary's glibc symbol versions exist at run time. For reproducible builds
# pin them by digest in your registry as well (image@sha256:...).
#
# scripts/check-deploy.sh lints this file (hadolint) and runs the build stage's commands
# (the same COPY set and the same cargo command) on the host.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin partwarden

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="partwarden" \
      org.opencontainers.image.description="Keeps PostgreSQL time-partitioned tables healthy: premake, retention, indexes, pgvector, metrics." \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/partwarden /usr/local/bin/partwarden
COPY config/partwarden.toml /etc/partwarden/partwarden.toml
ENV PARTWARDEN_CONFIG=/etc/partwarden/partwarden.toml
USER 65532:65532
# http.listen: /metrics, /healthz, /readyz, /status
EXPOSE 9464
ENTRYPOINT ["partwarden"]
CMD ["run"]
