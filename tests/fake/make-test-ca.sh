#!/usr/bin/env bash
# Creates a throwaway test CA and a server certificate for localhost,
# 127.0.0.1 and ::1 signed by it, for fake_platforms --tls-cert/--tls-key.
# Each run makes a new CA, so a second run gives tests an "unknown CA" to
# check that it is refused.
#
# Usage: tests/fake/make-test-ca.sh DIR
# Writes DIR/ca.pem (what the client trusts), DIR/ca.key, DIR/server.pem
# (leaf certificate) and DIR/server.key. Valid for 30 days. Test use only.
set -euo pipefail
dir=${1:?usage: make-test-ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
curve=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
serial() { echo "0x$(openssl rand -hex 12)"; }

openssl req -x509 "${curve[@]}" -keyout ca.key -out ca.pem -days 30 -set_serial "$(serial)" \
  -subj "/O=tokend tests/CN=tokend test CA $(date +%s)-$$" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" 2>/dev/null

openssl req "${curve[@]}" -keyout server.key -out server.csr -subj "/O=tokend tests/CN=localhost" \
  2>/dev/null
cat >server.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "$(serial)" -days 30 \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext
chmod 644 ca.pem server.pem
echo "$dir: ca.pem ca.key server.pem server.key"
