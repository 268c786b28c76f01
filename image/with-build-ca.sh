#!/bin/sh
# Runs one build step trusting the extra CA that `image/build.sh --ca-cert FILE` passes as the
# build secret `extra_ca` (for a TLS-intercepting proxy between the build and the registries).
# Without that secret the step runs unchanged. The CA is never written into an image layer.
set -eu

extra=/run/secrets/extra_ca
if [ ! -s "$extra" ]; then
    exec "$@"
fi

bundle=$(mktemp)
cat /etc/ssl/certs/ca-certificates.crt "$extra" >"$bundle"
status=0
# pip, uv (rustls) and npm each read a different variable; all get the system roots plus the CA.
SSL_CERT_FILE=$bundle PIP_CERT=$bundle NODE_EXTRA_CA_CERTS=$extra npm_config_cafile=$bundle \
    "$@" || status=$?
rm -f "$bundle"
exit "$status"
