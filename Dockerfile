# Build: docker build -t dbquery .
# Run:   docker run --rm -p 3000:3000 --env-file dbquery.env -v "$PWD/dbquery.yml:/app/dbquery.yml:ro" dbquery
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DBQUERY_CONFIG=/app/dbquery.yml \
    DBQUERY_DATABASE_URL=sqlite:////data/dbquery.sqlite3 \
    DBQUERY_RESULTS_DIR=/data/results

WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY bot ./bot
COPY core ./core
COPY db ./db
COPY web ./web
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --create-home dbquery \
    && mkdir -p /app \
    && rm -rf /src

USER dbquery
WORKDIR /data
EXPOSE 3000
CMD ["dbquery", "serve", "--port", "3000"]
