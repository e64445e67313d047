# toystore front-end: the public API on port 6060. Stateless.
# Built FROM scratch around a statically linked binary; see dockerfiles/build.sh.
FROM scratch
COPY frontend /frontend
# Peers are bare hosts (default ports 10086 and 10010): their names on the
# container network. Override with -e CATALOG=... -e ORDER=...
# Smaller per-thread malloc caches (src/malloc.rs): read by glibc only at start.
ENV GLIBC_TUNABLES=glibc.malloc.tcache_max=128 \
    LISTEN=0.0.0.0:6060 \
    CATALOG=catalog \
    ORDER=order
USER 10001:10001
EXPOSE 6060
HEALTHCHECK --interval=2s --timeout=3s --start-period=2s --retries=5 CMD ["/frontend", "--healthcheck"]
ENTRYPOINT ["/frontend"]
