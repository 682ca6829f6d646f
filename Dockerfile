# syntax=docker/dockerfile:1
# Build: the Rust toolchain, locked dependencies. Run: distroless cc, non-root, no shell.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin partwarden

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/partwarden /usr/local/bin/partwarden
COPY config/partwarden.toml /etc/partwarden/partwarden.toml
ENV PARTWARDEN_CONFIG=/etc/partwarden/partwarden.toml
USER nonroot:nonroot
EXPOSE 9464
ENTRYPOINT ["partwarden"]
CMD ["run"]
