#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by cluster/start-local-slurm.sh.
#
#   cluster/stop-local-slurm.sh [--purge] [STATE_DIR]
#
# STATE_DIR defaults to $LOCAL_SLURM_DIR, else /tmp/local-slurm. Cancels the cluster's jobs,
# then signals only the daemons whose PIDs the start script recorded in STATE_DIR/pids/
# (each checked to still run the binary it was started as): TERM, then KILL after 20 s.
# --purge also deletes STATE_DIR. Safe to run when nothing is running.
set -euo pipefail

purge=0
if [[ ${1:-} == --purge ]]; then purge=1; shift; fi
STATE=${1:-${LOCAL_SLURM_DIR:-/tmp/local-slurm}}
log() { echo "[stop-local-slurm] $*" >&2; }

if [[ ! -d $STATE ]]; then
    log "nothing to stop: $STATE does not exist"
    exit 0
fi
STATE=$(cd "$STATE" && pwd)
PIDS=$STATE/pids
export PATH=$PATH:/usr/sbin:/sbin
export SLURM_CONF=$STATE/etc/slurm.conf

# shellcheck source=cluster/pids.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pids.sh"

# Cancel whatever still runs on the cluster, so no job step outlives slurmd.
if alive_pid slurmctld >/dev/null && command -v squeue >/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        log "cancelling jobs: ${jobs//$'\n'/ }"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 100); do
            [[ -z $(squeue -h -o %i 2>/dev/null || true) ]] && break
            sleep 0.2
        done
    fi
fi

for name in slurmd slurmctld slurmdbd mariadbd munged; do
    if pid=$(alive_pid "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            alive_pid "$name" >/dev/null || break
            sleep 0.2
        done
        if alive_pid "$name" >/dev/null; then
            log "$name ($pid) ignored TERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
        log "stopped $name ($pid)"
    fi
    rm -f "$PIDS/$name.pid"
done

# The link to this cluster's configuration made by the start script.
if [[ -L /run/slurm/conf && $(readlink /run/slurm/conf) == "$STATE/etc" ]]; then
    rm -f /run/slurm/conf
    rmdir /run/slurm 2>/dev/null || true
fi

if (( purge )); then
    rm -rf "$STATE"
    log "removed $STATE"
fi
