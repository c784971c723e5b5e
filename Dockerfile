# shoprec: one image for every role (`shoprec serve`, `shoprec worker`, the CLI).
#   docker build -t shoprec .                                   # CPU torch (default)
#   docker build -t shoprec:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
# Settings come from a TOML file (SHOPREC_CONFIG) and SHOPREC_* variables: docs/configuration.md.
FROM python:3.11-slim AS base

ARG TORCH_VERSION=2.13.0
# the wheel index torch comes from: the CPU build by default, a CUDA one (e.g. .../whl/cu128) for GPU workers
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SHOPREC_CACHE_DIR=/var/cache/shoprec

RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

WORKDIR /opt/shoprec
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --home-dir /var/lib/shoprec --create-home shoprec \
    && mkdir -p /var/cache/shoprec && chown shoprec /var/cache/shoprec

USER shoprec
WORKDIR /var/lib/shoprec
EXPOSE 8000
# ready = the database answers and every active model is loaded (503 with the reason otherwise)
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v1/health/ready', timeout=2).status != 200)"
ENTRYPOINT ["shoprec"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
