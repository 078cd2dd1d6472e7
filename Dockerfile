# One image for every bankstream app service (the `bankstream` CLI); docker-compose.yml runs it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bankstream ./bankstream
RUN pip install .
RUN useradd --create-home bankstream
USER bankstream
ENTRYPOINT ["bankstream"]
CMD ["--help"]
