# toystore catalog: the product table (write-through journal under /data).
# Built FROM scratch around a statically linked binary; see dockerfiles/build.sh,
# which prepares the build context (the stripped binary and an empty data/ folder).
FROM scratch
COPY catalog /catalog
# An empty /data owned by the service user: a named volume mounted here starts
# with this ownership, so the non-root service can write its journal.
COPY --chown=10001:10001 data/ /data/
# Smaller per-thread malloc caches (src/malloc.rs): read by glibc only at start.
ENV GLIBC_TUNABLES=glibc.malloc.tcache_max=128 \
    LISTEN=0.0.0.0:10086 \
    DATA_DIR=/data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 10086
# No shell or curl in the image: the binary probes its own /health.
HEALTHCHECK --interval=2s --timeout=3s --start-period=2s --retries=5 CMD ["/catalog", "--healthcheck"]
ENTRYPOINT ["/catalog"]
