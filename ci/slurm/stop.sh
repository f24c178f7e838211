#!/usr/bin/env bash
# Stop the daemons started by ci/slurm/start.sh, by the PIDs in their pid files.
# Usage: ci/slurm/stop.sh [SCRATCH_DIR]   (default /tmp/xldas-slurm)
set -uo pipefail

S="${1:-${XLDAS_SLURM_DIR:-/tmp/xldas-slurm}}"
CONF_FILE="${XLDAS_SLURM_CONF_FILE:-/tmp/xldas-slurm-conf}"

if [ -f "$S/slurm.conf" ] && command -v scancel >/dev/null 2>&1; then
    SLURM_CONF="$S/slurm.conf" scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
fi
for pidfile in "$S/slurmd.pid" "$S/slurmctld.pid" "$S/munge/munged.pid"; do
    [ -s "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        echo "stopped $(basename "$pidfile" .pid) ($pid)"
    fi
    rm -f "$pidfile"
done
rm -f "$CONF_FILE"
