# The ufarchive image: the CLI as entrypoint; compose services choose the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UFARCHIVE_CONFIG=/app/config \
    UFARCHIVE_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY crawler ./crawler
COPY archive ./archive
COPY web ./web
RUN pip install --no-cache-dir . \
    && useradd --system --create-home --uid 10001 ufarchive \
    && mkdir -p /data && chown ufarchive /data
COPY config ./config

USER ufarchive
VOLUME ["/data"]
ENTRYPOINT ["ufarchive"]
CMD ["schedule"]
