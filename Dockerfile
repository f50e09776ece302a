# Multi-stage build: compile with the Rust toolchain, run from a small, non-root,
# shell-less image (distroless cc: glibc and CA certificates only).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin jans-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/jans-exporter /usr/local/bin/jans-exporter
# The bundled example logs, for `docker run` on the embedded default.
COPY --from=build /src/examples/logs /examples/logs
WORKDIR /
USER 65532:65532
EXPOSE 9781
ENV JANS_EXPORTER_SERVER__LISTEN=0.0.0.0:9781
ENTRYPOINT ["/usr/local/bin/jans-exporter"]
CMD ["run"]
