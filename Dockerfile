# syntax=docker/dockerfile:1
# media-server on the CPU, with every model it needs inside: Whisper tiny.en (int8), Silero VAD, the speaker encoder.
#
#   docker build -t media-server .
#   docker run -p 8080:8080 -v media-server-data:/var/lib/media-server media-server
#
# The first start writes an admin key (team "default") to /var/lib/media-server/first-admin-key. Settings come from
# MEDIA_SERVER_* variables (compose.yaml: PostgreSQL and Redis). The install steps are docker/install.sh, which
# tests/test_container.py also runs without docker.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY . .
RUN python -m pip wheel --no-cache-dir --no-deps --disable-pip-version-check -w /dist .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="media-server" \
      org.opencontainers.image.description="Self-hosted real-time call intelligence (CPU)" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=wheel /dist /tmp/dist
COPY docker/install.sh docker/healthcheck.py /usr/local/lib/media-server/
RUN sh /usr/local/lib/media-server/install.sh /tmp/dist/media_server-*.whl /opt/media-server \
    && rm -rf /tmp/dist \
    && groupadd --system --gid 10001 media-server \
    && useradd --system --uid 10001 --gid media-server --home-dir /var/lib/media-server --create-home \
        --shell /usr/sbin/nologin media-server \
    && chmod 0700 /var/lib/media-server

ENV PATH=/opt/media-server/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEDIA_SERVER_HOST=0.0.0.0 \
    MEDIA_SERVER_PORT=8080 \
    MEDIA_SERVER_DATA_DIR=/var/lib/media-server

USER 10001:10001
WORKDIR /var/lib/media-server
VOLUME ["/var/lib/media-server"]
# HTTP and websockets; gRPC.
EXPOSE 8080 50051

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/usr/local/lib/media-server/healthcheck.py"]

ENTRYPOINT ["media-server"]
CMD ["serve"]
