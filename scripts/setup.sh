#!/usr/bin/env bash
# Installs everything bankstream needs on a fresh Debian machine; idempotent (a second run is quick).
#   system packages: a C compiler, Java 17+, Maven, Prometheus and its Pushgateway, Chromium and chromium-driver
#   (Debian's packages)
#   Python: a virtualenv in .venv with bankstream and its dev tools
#   the local stack's jars from Maven Central: Kafka, mongo-java-server, Kafka Connect and the
#   MongoDB sink connector (bankstream stack install --with connect --with pushgateway)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
command -v cc >/dev/null || need_apt+=(gcc libc6-dev)  # the ledger's C loop
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need_apt+=(prometheus-pushgateway)
# the dashboard's browser test: headless Chromium and its WebDriver
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $PYTHON is $("$PYTHON" --version 2>&1); bankstream needs Python >= 3.11 (set PYTHON=...)" >&2
  exit 2
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.bankstream-installed"
# reinstall when the project's metadata, its set of packages or its C source changes (editable
# installs map the packages; the C extension is compiled in place)
want=$( (cat pyproject.toml; ls -d ./*/__init__.py; cat loadgen/*.c) | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing bankstream into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
# byte-compile the packages now: an editable install does not, and where PYTHONDONTWRITEBYTECODE
# is set every command would compile its sources again at each start (~0.15 s of CPU)
"$VENV/bin/python" -m compileall -q $(ls -d ./*/__init__.py | xargs -n1 dirname) >/dev/null

"$VENV/bin/bankstream" stack install --with connect
