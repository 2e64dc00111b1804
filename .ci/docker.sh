#!/usr/bin/env bash
# Make a Docker engine answer on this machine, for the SWE sandbox tests.
# Idempotent: when `docker info` already answers this returns at once.
# Installs docker.io, debootstrap (the local base image is built with it),
# docker-registry (the tests start one on 127.0.0.1; never as a service here) and openssl
# from Debian's repos when missing, then starts dockerd in the background.
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/dockerd.log}

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# the SWE tests serve a published-layout image from a local registry on 127.0.0.1
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
# tests/test_engines.py makes TLS certificates for a second engine's tcp listener
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# ... and gives that engine a bridge of its own (ip link)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# ... and reaches this machine's engine through an sshd of its own (ssh:// engines)
{ command -v sshd || [ -x /usr/sbin/sshd ]; } >/dev/null 2>&1 || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "docker.sh: installing ${need[*]}" >&2
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >/dev/null
fi

if engine_up; then
    exit 0
fi

pid_file=/var/run/docker.pid
if ! { [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }; then
    echo "docker.sh: starting dockerd (log: $log)" >&2
    # setsid: the engine outlives this script and is not in its process group.
    setsid nohup dockerd >"$log" 2>&1 < /dev/null &
fi

for _ in $(seq 1 60); do
    if engine_up; then
        exit 0
    fi
    sleep 1
done
echo "docker.sh: the Docker engine did not answer within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
