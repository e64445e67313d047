# toystore order service: order numbers and the durable order log under /data.
# Built FROM scratch around a statically linked binary; see dockerfiles/build.sh.
FROM scratch
COPY order /order
COPY --chown=10001:10001 data/ /data/
# CATALOG is a bare host (default port 10086): the catalog's name on the
# container network. Override with -e CATALOG=host[:port].
# Smaller per-thread malloc caches (src/malloc.rs): read by glibc only at start.
ENV GLIBC_TUNABLES=glibc.malloc.tcache_max=128 \
    LISTEN=0.0.0.0:10010 \
    DATA_DIR=/data \
    CATALOG=catalog
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 10010
HEALTHCHECK --interval=2s --timeout=3s --start-period=2s --retries=5 CMD ["/order", "--healthcheck"]
ENTRYPOINT ["/order"]
