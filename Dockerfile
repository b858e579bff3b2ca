# Arrive: one image for every command (serve, ingest, monitor, train).
#   docker build -t arrive .
#   docker run -p 8000:8000 -v arrive-registry:/var/lib/arrive/registry arrive
# Linted by hadolint in the test suite (tests/deploy/test_containers.py).

# --- build: a virtualenv with Arrive and its pinned dependencies -------------------
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/arrive \
 && /opt/arrive/bin/pip install "pip==25.3"
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/arrive/bin/pip install .

# --- run: the virtualenv on a slim base, as a non-root user -------------------------
FROM python:3.11.11-slim-bookworm
# LightGBM needs the GNU OpenMP runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 arrive \
 && useradd --system --uid 10001 --gid arrive --home-dir /var/lib/arrive --create-home arrive
COPY --from=build /opt/arrive /opt/arrive
ENV PATH=/opt/arrive/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ARRIVE_HOST=0.0.0.0 \
    ARRIVE_PORT=8000 \
    ARRIVE_REGISTRY_DIR=/var/lib/arrive/registry \
    ARRIVE_COMPILE_CACHE_DIR=/var/lib/arrive/compiled \
    ARRIVE_PREDICTION_LOG_DIR=/var/lib/arrive/predictions
WORKDIR /var/lib/arrive
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('ARRIVE_PORT', '8000')}/healthz\", timeout=2)"]
ENTRYPOINT ["arrive"]
CMD ["serve"]
