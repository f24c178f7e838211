#!/usr/bin/env bash
# Start munge + slurmctld + slurmd on this machine as a one-node cluster (no systemd,
# no cgroups). Usage: ci/slurm/start.sh [SCRATCH_DIR]
# (default $XLDAS_SLURM_DIR, else /tmp/xldas-slurm)
#
# Writes $S/slurm.conf and records its location in the file named by
# $XLDAS_SLURM_CONF_FILE (default /tmp/xldas-slurm-conf), which the tests read
# to find the cluster. Daemons' PIDs go to $S/*.pid; ci/slurm/stop.sh stops them.
# The controller and node daemon listen on free ports, so two clusters (two CI
# runs in different scratch dirs) can run side by side.
set -euo pipefail

S="${1:-${XLDAS_SLURM_DIR:-/tmp/xldas-slurm}}"
CONF_FILE="${XLDAS_SLURM_CONF_FILE:-/tmp/xldas-slurm-conf}"
H="$(hostname -s)"
CPUS="$(nproc)"
PY="$(command -v python3 || command -v python || true)"
free_port() {
    if [ -n "$PY" ]; then
        "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        echo "$1"
    fi
}

if [ "$(id -u)" -ne 0 ]; then
    echo "ci/slurm/start.sh: needs root (munged runs as user munge, slurmd as root)" >&2
    exit 1
fi
for exe in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd; do
    [ -x "$exe" ] || { echo "ci/slurm/start.sh: $exe missing; run ci/slurm/install.sh" >&2; exit 1; }
done

mkdir -p "$S/munge" "$S/state" "$S/spool" "$S/jobs" "$S/log"
chmod 755 "$S" "$S/jobs"
chown munge:munge "$S/munge"
chmod 711 "$S/munge"
# munge refuses a key it did not create; make one per scratch dir.
if [ ! -s "$S/munge/munge.key" ]; then
    dd if=/dev/urandom bs=1 count=1024 of="$S/munge/munge.key" status=none
    chown munge:munge "$S/munge/munge.key"
    chmod 400 "$S/munge/munge.key"
fi

if [ -f "$S/slurm.conf" ] && [ -s "$S/slurmctld.pid" ] && kill -0 "$(cat "$S/slurmctld.pid")" 2>/dev/null; then
    CTLD_PORT="$(sed -n 's/^SlurmctldPort=//p' "$S/slurm.conf")"
    SLURMD_PORT="$(sed -n 's/^SlurmdPort=//p' "$S/slurm.conf")"
else
    CTLD_PORT="$(free_port 6817)"
    SLURMD_PORT="$(free_port 6818)"
fi

cat > "$S/slurm.conf" <<CONF
ClusterName=xldas
SlurmctldHost=${H}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/munge.socket.2
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SchedulerType=sched/backfill
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName=${H} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=${H} Default=YES MaxTime=INFINITE State=UP
CONF

if [ -s "$S/munge/munged.pid" ] && kill -0 "$(cat "$S/munge/munged.pid")" 2>/dev/null; then
    echo "munged already running"
else
    runuser -u munge -- /usr/sbin/munged \
        --socket="$S/munge/munge.socket.2" \
        --key-file="$S/munge/munge.key" \
        --log-file="$S/munge/munged.log" \
        --pid-file="$S/munge/munged.pid" \
        --seed-file="$S/munge/munged.seed"
fi
for _ in $(seq 50); do [ -S "$S/munge/munge.socket.2" ] && break; sleep 0.1; done

export SLURM_CONF="$S/slurm.conf"
if [ -s "$S/slurmctld.pid" ] && kill -0 "$(cat "$S/slurmctld.pid")" 2>/dev/null; then
    echo "slurmctld already running"
else
    /usr/sbin/slurmctld -f "$S/slurm.conf"
fi
if [ -s "$S/slurmd.pid" ] && kill -0 "$(cat "$S/slurmd.pid")" 2>/dev/null; then
    echo "slurmd already running"
else
    /usr/sbin/slurmd -f "$S/slurm.conf"
fi

state=""
for _ in $(seq 150); do
    state="$(sinfo -h -o %T 2>/dev/null | head -n1 || true)"
    [ "$state" = "idle" ] && break
    sleep 0.2
done
if [ "$state" != "idle" ]; then
    echo "ci/slurm/start.sh: node did not become idle (state '$state'); logs in $S/log" >&2
    exit 1
fi
echo "$S/slurm.conf" > "$CONF_FILE"
echo "slurm up: SLURM_CONF=$S/slurm.conf (recorded in $CONF_FILE)"
