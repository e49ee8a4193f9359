# MicroStream: one image for every service of the distributed mode
# (`microstream ingest`, `microstream engine`, `microstream dashboard`).
# Build: docker build -t microstream .   Run: see docker-compose.yml and docs/distributed.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY src ./src
COPY docs ./docs
# gcc builds the compiled order book (src/microstream/book/_cside.c), then goes
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 microstream \
    && mkdir -p /data \
    && chown microstream /data

USER microstream
# Inside a container the engine API must listen on every interface so the
# dashboard container (and the health check) can reach it.
ENV MICROSTREAM_DATA_DIR=/data \
    MICROSTREAM_API_HOST=0.0.0.0 \
    MICROSTREAM_API_PORT=8765 \
    MICROSTREAM_DOCS_DIR=/app/docs
EXPOSE 8765 8501
VOLUME ["/data"]

# Health checks are per service in docker-compose.yml (the engine's: GET /health,
# which answers 503 when its status is down: broker unreachable or consumer
# errors for more than MICROSTREAM_KAFKA_DOWN_AFTER_S); ingest's: GET /health of
# `ingest --health-port 8766` (503 when the broker is unreachable that long).

ENTRYPOINT ["microstream"]
CMD ["--help"]
