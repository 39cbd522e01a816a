#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ answer on 127.0.0.1 (5432 and 5672): starts them
# when installed, installs them with apt-get when missing (as root), and otherwise says
# exactly what to do. Safe to run again and again.
set -euo pipefail

PG_PORT=5432
AMQP_PORT=5672

say() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # port seconds name
  local i
  for ((i = 0; i < $2 * 2; i++)); do
    port_open "$1" && return 0
    sleep 0.5
  done
  say "$3 did not open port $1 within $2 s"
  return 1
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  say "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if port_open "$PG_PORT"; then say "PostgreSQL is up on 127.0.0.1:$PG_PORT"; return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    if can_install; then
      apt_install postgresql
    else
      say "PostgreSQL is not installed. Install it (Debian/Ubuntu: sudo apt-get install postgresql),"
      say "or point DATABASE_URL at a server you have, then run this again."
      return 1
    fi
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "starting PostgreSQL $version"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  wait_for_port "$PG_PORT" 30 PostgreSQL
  # A fresh install only trusts the local socket: give the `postgres` role the
  # password the local DATABASE_URL uses (harmless where auth is `trust`).
  if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- psql -q -c "ALTER ROLE postgres PASSWORD 'postgres'" >/dev/null 2>&1 || true
  fi
}

ensure_rabbitmq() {
  if port_open "$AMQP_PORT"; then say "RabbitMQ is up on 127.0.0.1:$AMQP_PORT"; return 0; fi
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    if can_install; then
      apt_install rabbitmq-server
    else
      say "RabbitMQ is not installed. Install it (Debian/Ubuntu: sudo apt-get install rabbitmq-server),"
      say "or point AMQP_URL at a broker you have, then run this again."
      return 1
    fi
  fi
  say "starting RabbitMQ (this can take 10-20 s)"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for_port "$AMQP_PORT" 90 RabbitMQ
}

ensure_postgres
ensure_rabbitmq
