# The churnwatch worker for a real Kafka cluster (no embedded broker inside).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHURNWATCH_WEB_HOST=0.0.0.0 \
    CHURNWATCH_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY schemas ./schemas
COPY rules ./rules
COPY stream_app ./stream_app
RUN pip install --no-cache-dir -c constraints.txt ".[worker]" \
    && useradd --system --uid 10001 --home-dir /data --create-home churnwatch

USER churnwatch
VOLUME ["/data"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('CHURNWATCH_WEB_PORT', '6066'), timeout=4)"
CMD ["churnwatch", "worker"]
