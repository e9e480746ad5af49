#!/bin/sh
# Writes the secrets docker-compose.yml reads (./secrets/*, mode 600), each random; keeps existing ones.
set -eu
cd "$(dirname "$0")/.."
mkdir -p secrets
chmod 700 secrets
umask 077
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
[ -s secrets/db_password ] || random > secrets/db_password
[ -s secrets/metrics_token ] || random > secrets/metrics_token
[ -s secrets/database_url ] || printf 'postgresql://loyalty:%s@db:5432/loyalty\n' "$(cat secrets/db_password)" > secrets/database_url
echo "secrets in ./secrets (database_url, db_password, metrics_token)"
