#!/usr/bin/env bash
# Makes the example's secrets (never committed): an htpasswd with an `admin` and a `ci` user
# (random passwords, printed once), the token signing key (EC P-256) and a self-signed TLS
# certificate for the given names (default: localhost and 127.0.0.1).
#   bash deploy/gen-secrets.sh [DIR] [NAME...]      (DIR defaults to deploy/secrets)
# Needs openssl and htpasswd (apache2-utils).
set -euo pipefail
dir="${1:-$(dirname "$0")/secrets}"
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1)
mkdir -p "$dir"
umask 077

san=""
for n in "${names[@]}"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
  -keyout "$dir/tls.key" -out "$dir/tls.crt" -subj "/CN=${names[0]}" \
  -addext "subjectAltName=${san%,}" -addext "extendedKeyUsage=serverAuth" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/token.pem" 2>/dev/null

: > "$dir/htpasswd"
for user in admin ci; do
  pw="$(openssl rand -base64 18)"
  htpasswd -bB "$dir/htpasswd" "$user" "$pw" 2>/dev/null
  echo "$user: $pw"
done
chmod 0644 "$dir/tls.crt"
# the registry runs as uid 1000 in the image; the files must be readable by it
chmod 0644 "$dir/htpasswd" "$dir/token.pem" "$dir/tls.key" 2>/dev/null || true
echo "secrets written to $dir (clients trust $dir/tls.crt)" >&2
