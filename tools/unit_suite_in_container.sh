#!/usr/bin/env bash
# The unit suite on another Debian's Python, in a container: tools/unit_suite_in_container.sh trixie
# (Debian 13, Python 3.13; the checkout's own Python is Debian 12's 3.11). The image is built
# offline like every base image (dlws/sandbox/images.py); the controller's CA bundle is handed in for
# PyPI; the environment comes from uv.lock. Prints the suite's tail and its time.
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=${1:-trixie}
NAME=${DLWS_CONTAINER:-dlws-unit-$SUITE}
IMAGE=$(.venv/bin/python -m dlws.sandbox.images "$SUITE" | tail -1)
BUNDLE=/etc/ssl/certs/ca-certificates.crt
docker rm -f "$NAME" >/dev/null 2>&1 || true
trap 'docker rm -f "$NAME" >/dev/null 2>&1 || true' EXIT
# The bundle beside the container's own (ca-certificates' postinst rewrites that one).
docker run -d --name "$NAME" -v "$PWD:/src:ro" -v "$BUNDLE:/controller-ca.crt:ro" \
  -e SSL_CERT_FILE=/controller-ca.crt -e PIP_CERT=/controller-ca.crt "$IMAGE" sleep infinity \
  >/dev/null
docker exec "$NAME" bash -c '
set -eo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq python3 python3-venv git gnupg openssl curl \
  ca-certificates e2fsprogs >/dev/null
mkdir /w && cd /src && tar --exclude=.venv --exclude=reports -cf - . | tar -C /w -xf -
cd /w && python3 -m venv .venv && .venv/bin/pip install -q uv==0.13.9
UV_PROJECT_ENVIRONMENT=.venv .venv/bin/uv sync -q --frozen --all-extras
.venv/bin/python -c "import sys, ansible.release as a; print(sys.version.split()[0], a.__version__)"
start=$(date +%s)
.venv/bin/pytest tests -m "not integration and not slow" -q -p no:cacheprovider "$@" 2>&1 | tail -40
echo "unit suite: $(( $(date +%s) - start )) s"
' bash "${@:2}"
