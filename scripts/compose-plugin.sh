#!/usr/bin/env bash
# Makes `docker compose` (the Compose v2 CLI plugin) available for checking docker-compose.yml on
# machines without it: built once from the Go module proxy (~2 min) into ~/.docker/cli-plugins.
# Only the client is needed: `docker compose config` works without a Docker engine.
set -euo pipefail
COMPOSE_VERSION=${COMPOSE_VERSION:-v2.40.3}
if ! command -v docker >/dev/null; then
  echo "compose-plugin: no docker client on this machine; the compose file check will be skipped"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "compose-plugin: neither 'docker compose' nor Go is installed; install one of them" >&2
  exit 2
fi
plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
mkdir -p "$plugins"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "compose-plugin: building docker compose $COMPOSE_VERSION (about 2 minutes, once)"
(
  cd "$work"
  go mod init compose-build >/dev/null 2>&1
  go get "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION" >/dev/null 2>&1
  go build -o "$plugins/docker-compose" github.com/docker/compose/v2/cmd
)
docker compose version
