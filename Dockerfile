# Multi-stage build: compile with the Rust toolchain, run from a small, non-root,
# shell-less image (distroless cc: glibc and CA certificates only).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
# The build context has no .git: the commit comes in as a build argument.
ARG REVISION=unknown
RUN JANSX_BUILD_REVISION="${REVISION}" cargo build --release --locked --bin jans-exporter \
 && mkdir -p /out/var/lib/jans-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jans-exporter" \
      org.opencontainers.image.description="Prometheus exporter sidecar for the Janssen auth server" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /src/target/release/jans-exporter /usr/local/bin/jans-exporter
# The bundled example logs, for `docker run` on the embedded default.
COPY --from=build /src/examples/logs /examples/logs
# State under a writable absolute path owned by the image's user: the embedded
# default's relative folder would land in `/`, which that user cannot write.
COPY --from=build --chown=65532:65532 /out/var/lib/jans-exporter /var/lib/jans-exporter
ENV JANS_EXPORTER_STATE__DIR=/var/lib/jans-exporter
VOLUME ["/var/lib/jans-exporter"]
WORKDIR /
USER 65532:65532
EXPOSE 9781
ENV JANS_EXPORTER_SERVER__LISTEN=0.0.0.0:9781
# No shell or curl in the image: the binary asks its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["/usr/local/bin/jans-exporter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/jans-exporter"]
CMD ["run"]
