#!/usr/bin/env bash
# Install a single-node Slurm (slurmctld + slurmd) and munge from Debian packages.
# Needs root. Idempotent: does nothing when the binaries are already there.
set -euo pipefail

if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
    && command -v munged >/dev/null 2>&1 && command -v sinfo >/dev/null 2>&1; then
    echo "slurm-wlm and munge already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ci/slurm/install.sh: needs root to apt-get install slurm-wlm munge" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
echo "installed: $(slurmctld -V)"
