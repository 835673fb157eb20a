# Support desk image: one image, one entrypoint (`helpdesk`), one process per container.
#   docker build -t helpdesk .
#   docker run --env-file .env helpdesk api        (or: bot, scheduler, migrate, run, ...)
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (cached while only the code changes), then the package itself.
COPY pyproject.toml README.md ./
RUN mkdir -p api bootstrap bot core db scheduler telegram_delivery webhooks mail \
    && touch api/__init__.py bootstrap/__init__.py bot/__init__.py core/__init__.py db/__init__.py \
       scheduler/__init__.py telegram_delivery/__init__.py webhooks/__init__.py mail/__init__.py \
    && pip install . \
    && pip uninstall -y helpdesk \
    && rm -rf api bootstrap bot core db scheduler telegram_delivery webhooks mail build *.egg-info

COPY api ./api
COPY bootstrap ./bootstrap
COPY bot ./bot
COPY core ./core
COPY db ./db
COPY scheduler ./scheduler
COPY telegram_delivery ./telegram_delivery
COPY webhooks ./webhooks
COPY mail ./mail
RUN pip install --no-deps . && rm -rf build *.egg-info

# Run as an unprivileged user; media and the (SQLite) data folder are its only writable places.
RUN groupadd --system --gid 10001 helpdesk \
    && useradd --system --uid 10001 --gid helpdesk --home-dir /app --shell /usr/sbin/nologin helpdesk \
    && mkdir -p /app/media /app/data \
    && chown -R helpdesk:helpdesk /app/media /app/data
USER helpdesk

ENV HOST=0.0.0.0 \
    PORT=8000 \
    MEDIA_ROOT=/app/media \
    LOG_FORMAT=json

# 8000: the API (and /metrics); 9100: METRICS_PORT of the bot/scheduler containers;
# 2525: MAIL_INBOUND_PORT when replies by e-mail are received.
EXPOSE 8000 9100 2525
VOLUME ["/app/media"]


# Sanic stops accepting connections on SIGTERM and lets in-flight requests finish for
# SANIC_GRACEFUL_SHUTDOWN_TIMEOUT seconds (default 15); compose gives it stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["helpdesk"]
CMD ["api"]
