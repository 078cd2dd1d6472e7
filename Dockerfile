# One image for every bankstream app service (the `bankstream` CLI); docker-compose.yml runs it.
# The ledger's C loop is compiled in a build stage; the final image has no compiler.
# Every package pyproject.toml installs is copied (tests/unit/test_dockerfile.py reproduces this
# build in a virtualenv and runs every command's --help from it).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bankstream ./bankstream
COPY scenarios ./scenarios
COPY loadgen ./loadgen
COPY sink ./sink
COPY harness ./harness
COPY dashboard ./dashboard
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
RUN useradd --create-home bankstream && mkdir /results && chown bankstream /results
USER bankstream
WORKDIR /home/bankstream
# the producer's and the sink's /metrics (scraped by the compose Prometheus), the dashboard
EXPOSE 9101 9102 8501
ENTRYPOINT ["bankstream"]
CMD ["--help"]
