#!/usr/bin/env bash
# Installs what `npm test` and `npm run demo` need on a fresh Debian machine, or says exactly what
# is missing. Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

missing_debs=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing_debs+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || missing_debs+=(openssh-client)
command -v ip >/dev/null 2>&1 || missing_debs+=(iproute2)
command -v sudo >/dev/null 2>&1 || missing_debs+=(sudo)
command -v unshare >/dev/null 2>&1 || missing_debs+=(util-linux)
# `provision probe` sends its helper to the hosts as a Python 3 program (the fleet's hosts share this /usr).
command -v python3 >/dev/null 2>&1 || missing_debs+=(python3)
# The systemd fleet (test/fleet/systemd) boots Debian hosts with systemd-nspawn from a rootfs debootstrap builds.
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing_debs+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || missing_debs+=(systemd-container)
# test/e2e/statusPrometheus.test.ts has node_exporter's textfile collector (the consumer of
# `status --format prometheus -o FILE`) read the file, to prove it accepts what we write.
command -v prometheus-node-exporter >/dev/null 2>&1 || missing_debs+=(prometheus-node-exporter)

if [ ${#missing_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing_debs[*]}. Run as root, or: sudo apt-get install -y ${missing_debs[*]}" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing ${missing_debs[*]} and there is no apt-get here; install them with this system's package manager." >&2
    exit 1
  fi
  echo "setup: installing ${missing_debs[*]} (apt-get)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))." >&2
  exit 1
fi

# npm ci runs `prepare`, which compiles TypeScript to dist/.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
else
  npx tsc -p tsconfig.json
fi
