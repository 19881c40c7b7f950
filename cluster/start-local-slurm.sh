#!/usr/bin/env bash
# Bring up a single-node Slurm cluster on 127.0.0.1, for testing the Slurm profile
# (profiles/slurm) without a real cluster.
#
#   cluster/start-local-slurm.sh [STATE_DIR]      (run as root)
#   . STATE_DIR/env                                     (sets SLURM_CONF for sbatch, sacct, ...)
#   cluster/stop-local-slurm.sh [STATE_DIR]
#
# STATE_DIR defaults to $LOCAL_SLURM_DIR, else /tmp/local-slurm. Everything the cluster
# writes (configuration, munge key, MariaDB data, spool, logs, PID files) lives there;
# nothing under /etc is changed. The one thing outside it is the link /run/slurm/conf ->
# STATE_DIR/etc (see below), which the stop script removes. One such cluster at a time.
# Daemons: munged, mariadbd (slurmdbd's accounting database,
# which `sacct` needs), slurmdbd, slurmctld, slurmd. They run in the foreground of their
# own session, without systemd or cgroups (proctrack/linuxproc, task/none); their PIDs go
# to STATE_DIR/pids/, which is all the stop script ever signals.
#
# Idempotent: if the cluster in STATE_DIR is already up, it only re-checks it; if it is
# half up, it stops what it started and starts again. Missing Debian packages (slurmctld
# slurmd slurm-client slurmdbd munge mariadb-server) are installed with apt-get, without
# letting their maintainer scripts start any system service.
#
# Every address used is 127.0.0.1: slurmctld, slurmd and MariaDB listen on it alone;
# slurmdbd (Slurm 22.05 has no setting for its listening address) listens on port 6819 of
# every interface, answering only requests signed with this cluster's own munge key.
# Ports (override through the environment if taken):
#   LOCAL_SLURM_CTLD_PORT (6817), LOCAL_SLURM_SLURMD_PORT (6818),
#   LOCAL_SLURM_DBD_PORT (6819), LOCAL_SLURM_MYSQL_PORT (3307).
# The node offers LOCAL_SLURM_CPUS CPUs (default: this machine's, at least 8) and
# LOCAL_SLURM_MEM_MB MB (default: this machine's, at least 32000), so that the profile's
# requests fit; nothing is enforced (no cgroups), so these only shape scheduling.
# It also offers LOCAL_SLURM_GPUS (default 4) GPUs of type "fake" (gres backed by empty
# files in STATE_DIR/dev), so a job asking for gpu=1 is scheduled here and runs on the CPU.
set -euo pipefail

STATE=${1:-${LOCAL_SLURM_DIR:-/tmp/local-slurm}}
CTLD_PORT=${LOCAL_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${LOCAL_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${LOCAL_SLURM_DBD_PORT:-6819}
MYSQL_PORT=${LOCAL_SLURM_MYSQL_PORT:-3307}
CLUSTER=localcluster
NODE=localhost
PARTITION=debug
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "[start-local-slurm] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (the daemons and apt-get need it)"
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

# ------------------------------------------------------------------ packages -------------
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
BINARIES=(slurmctld slurmd sbatch sacct slurmdbd munged mariadbd mariadb-install-db mariadb)
missing=0
for b in "${BINARIES[@]}"; do
    command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || missing=1
done
if (( missing )); then
    command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get"
    log "installing ${PACKAGES[*]} with apt-get"
    # Keep the packages' maintainer scripts from starting system-wide services (munge,
    # mariadb, slurm*) through invoke-rc.d: add a refusing policy-rc.d unless one exists.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    t0=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -q -o DPkg::Lock::Timeout=300)   # wait for another apt-get to finish
    if ! "${apt[@]}" install -y --no-install-recommends "${PACKAGES[@]}" >"$STATE/apt.log" 2>&1; then
        "${apt[@]}" update >>"$STATE/apt.log" 2>&1 || true
        "${apt[@]}" install -y --no-install-recommends "${PACKAGES[@]}" >>"$STATE/apt.log" 2>&1 \
            || { (( added_policy )) && rm -f "$policy"; tail -20 "$STATE/apt.log" >&2 || true; die "apt-get install failed (log: $STATE/apt.log)"; }
    fi
    (( added_policy )) && rm -f "$policy"
    log "packages installed in $(( $(date +%s) - t0 )) s"
fi
export PATH=$PATH:/usr/sbin:/sbin

# ------------------------------------------------------------------ helpers --------------
PIDS=$STATE/pids
mkdir -p "$PIDS"
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order

# shellcheck source=cluster/pids.sh
. "$HERE/pids.sh"

# Start "$@" in its own session, in the background, and record its PID as $name.
launch() {
    local name=$1; shift
    setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
    echo $! >"$PIDS/$name.pid"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local timeout=$1 what=$2; shift 2
    local end=$(( SECONDS + timeout ))
    until "$@" >/dev/null 2>&1; do
        (( SECONDS < end )) || { log "gave up waiting for $what after $timeout s"; return 1; }
        sleep 0.2
    done
}

port_free() {  # true if nothing listens on 127.0.0.1:$1
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ------------------------------------------------------------------ already up? ----------
export SLURM_CONF=$STATE/etc/slurm.conf
healthy() {
    local d
    for d in "${DAEMONS[@]}"; do alive_pid "$d" >/dev/null || return 1; done
    [[ $(readlink /run/slurm/conf 2>/dev/null) == "$STATE/etc" ]] || return 1
    sinfo -h -n "$NODE" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' || return 1
    sacct -n -X -S now-1minute >/dev/null 2>&1 || return 1
}
if healthy; then
    log "already running in $STATE"
    echo "$STATE"
    exit 0
fi
any=0
for d in "${DAEMONS[@]}"; do alive_pid "$d" >/dev/null && any=1; done
if (( any )); then
    log "cluster in $STATE is only partly up; restarting it"
    "$HERE/stop-local-slurm.sh" "$STATE"
fi

t_start=$EPOCHREALTIME
for port in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$MYSQL_PORT"; do
    port_free "$port" || die "port 127.0.0.1:$port is taken (another Slurm or MariaDB?); set LOCAL_SLURM_*_PORT"
done

# ------------------------------------------------------------------ configuration --------
mkdir -p "$STATE"/{etc,log,munge,mysql,spool/ctld,spool/d}
chmod 755 "$STATE"
chmod 755 "$STATE/munge"
chmod 700 "$STATE/mysql"

# At least 8 CPUs and 32 GB, whatever the machine has, so that every request of the Slurm
# profile (profiles/slurm) fits on the node; nothing is enforced.
real_cpus=$(nproc)
real_mem=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
CPUS=${LOCAL_SLURM_CPUS:-$(( real_cpus > 8 ? real_cpus : 8 ))}
MEM_MB=${LOCAL_SLURM_MEM_MB:-$(( real_mem > 32000 ? real_mem : 32000 ))}
GPUS=${LOCAL_SLURM_GPUS:-4}

if [[ ! -s $STATE/etc/munge.key ]]; then
    head -c 1024 /dev/urandom >"$STATE/etc/munge.key"
fi
chmod 600 "$STATE/etc/munge.key"
if [[ ! -s $STATE/etc/dbpass ]]; then
    head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$STATE/etc/dbpass"
fi
chmod 600 "$STATE/etc/dbpass"
DBPASS=$(<"$STATE/etc/dbpass")
MUNGE_SOCKET=$STATE/munge/munge.socket.2

gres_node=""
gres_types=""
if (( GPUS > 0 )); then
    gres_node="Gres=gpu:fake:$GPUS"
    gres_types="GresTypes=gpu"
    # A distinct device file per GPU is required; empty files stand in (nothing opens them).
    mkdir -p "$STATE/dev"
    : >"$STATE/etc/gres.conf"
    for i in $(seq 0 $(( GPUS - 1 ))); do
        : >"$STATE/dev/fake-gpu$i"
        echo "NodeName=$NODE Name=gpu Type=fake File=$STATE/dev/fake-gpu$i" >>"$STATE/etc/gres.conf"
    done
else
    : >"$STATE/etc/gres.conf"
fi
: >"$STATE/etc/plugstack.conf"

cat >"$SLURM_CONF" <<EOF
# Written by cluster/start-local-slurm.sh: a one-node cluster on 127.0.0.1.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/spool/slurmctld.pid
SlurmdPidFile=$STATE/spool/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
PlugStackConfig=$STATE/etc/plugstack.conf
# No systemd, no cgroups.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Trust the node description below, whatever slurmd measures.
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MailProg=/bin/true
MinJobAge=300
InactiveLimit=0
# Listen on the address "$NODE" resolves to (127.0.0.1), not on every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
# Accounting through slurmdbd (MariaDB), so that sacct works.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# Connections to slurmdbd authenticate through this munge socket, too.
AccountingStoragePass=$MUNGE_SOCKET
# Keep the job comment (the executor writes rule_<name>_wildcards_<...> there) for sacct.
AccountingStoreFlags=job_comment
# Record GPU allocations too (sacct -o AllocTRES shows gres/gpu=N).
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM_MB $gres_node State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

cat >"$STATE/etc/slurmdbd.conf" <<EOF
# Written by cluster/start-local-slurm.sh.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$STATE/spool/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$STATE/etc/slurmdbd.conf"

# Inside a job, the Slurm executor runs each step with `srun` in an environment stripped of
# SLURM_* variables, SLURM_CONF included; such an srun finds its configuration at
# /etc/slurm/slurm.conf, else at /run/slurm/conf/slurm.conf (where configless slurmd keeps
# it). Point the latter at STATE/etc; the stop script removes the link again.
[[ -e /etc/slurm/slurm.conf ]] \
    && die "/etc/slurm/slurm.conf exists: jobs' nested srun would use it instead of $SLURM_CONF"
RUN_CONF=/run/slurm/conf
if [[ -e $RUN_CONF && ! -L $RUN_CONF ]]; then
    die "$RUN_CONF exists and is not a link (a configless Slurm node?); not touching it"
fi
if [[ -L $RUN_CONF ]]; then
    other=$(readlink "$RUN_CONF")
    if [[ $other != "$STATE/etc" && -e $other/slurm.conf ]]; then
        grep -q '^# Written by cluster/start-local-slurm.sh' "$other/slurm.conf" \
            || die "$RUN_CONF points to another Slurm's configuration ($other); not touching it"
        other_pid=$(cat "$other/../pids/slurmctld.pid" 2>/dev/null || true)
        [[ -n $other_pid && -r /proc/$other_pid/cmdline ]] \
            && [[ $(tr '\0' '\n' <"/proc/$other_pid/cmdline" | head -n 1) == slurmctld ]] \
            && die "another local cluster runs in ${other%/etc}; stop it first: $HERE/stop-local-slurm.sh ${other%/etc}"
    fi
fi
mkdir -p /run/slurm
ln -sfn "$STATE/etc" "$RUN_CONF"

cat >"$STATE/env" <<EOF
# Source this file to use the local cluster: . $STATE/env
export SLURM_CONF=$SLURM_CONF
EOF

# ------------------------------------------------------------------ daemons --------------
# munge: authentication for every Slurm message.
launch munged munged --foreground --force \
    --key-file="$STATE/etc/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed" \
    --log-file="$STATE/log/munged.log"
wait_for 20 munged test -S "$MUNGE_SOCKET" || die "munged did not start (see $STATE/log/munged.*)"

# MariaDB: listens on 127.0.0.1 only, data under STATE.
MYSQL_SOCKET=$STATE/mysql/mysqld.sock
if [[ ! -d $STATE/mysql/data/mysql ]]; then
    mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql/data" \
        --auth-root-authentication-method=socket --skip-test-db \
        >"$STATE/log/mariadb-install.log" 2>&1 \
        || { tail -20 "$STATE/log/mariadb-install.log" >&2 || true; die "mariadb-install-db failed"; }
fi
launch mariadbd mariadbd --no-defaults --user=root --datadir="$STATE/mysql/data" \
    --socket="$MYSQL_SOCKET" --pid-file="$STATE/mysql/mariadbd.pid" \
    --bind-address=127.0.0.1 --port="$MYSQL_PORT" --skip-name-resolve \
    --log-error="$STATE/log/mariadbd.log" \
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --performance-schema=OFF \
    --innodb-lock-wait-timeout=900
# shellcheck disable=SC2120  # called with arguments through wait_for
sql() { mariadb --no-defaults --protocol=socket -S "$MYSQL_SOCKET" -u root "$@"; }
wait_for 60 mariadbd sql -e 'SELECT 1' || { tail -20 "$STATE/log/mariadbd.log" >&2 || true; die "mariadbd did not start"; }
# shellcheck disable=SC2119
sql <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF

# slurmdbd, then the controller (which registers the cluster with slurmdbd), then the node.
# slurmdbd reads slurmdbd.conf from the folder of $SLURM_CONF.
launch slurmdbd slurmdbd -D -s
wait_for 60 slurmdbd sacctmgr -n list cluster \
    || { tail -20 "$STATE/log/slurmdbd.log" >&2 || true; die "slurmdbd did not answer"; }
launch slurmctld slurmctld -D -s -i -f "$SLURM_CONF"
wait_for 60 slurmctld scontrol ping \
    || { tail -20 "$STATE/log/slurmctld.log" >&2 || true; die "slurmctld did not answer"; }
launch slurmd slurmd -D -s -N "$NODE" -f "$SLURM_CONF"

node_idle() { sinfo -h -n "$NODE" -o %T | grep -qE '^(idle|mixed|allocated)$'; }
if ! wait_for 60 slurmd node_idle; then
    # A node left DOWN/DRAIN by an earlier run of this cluster: bring it back.
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    wait_for 30 slurmd node_idle || { sinfo >&2 || true; tail -20 "$STATE/log/slurmd.log" >&2 || true; die "node $NODE did not become idle"; }
fi
# The controller registers the cluster with slurmdbd on its first contact.
wait_for 60 "cluster registration" bash -c "sacctmgr -n -P list cluster format=cluster | grep -qx $CLUSTER" \
    || die "cluster $CLUSTER is not registered in slurmdbd"
wait_for 30 sacct sacct -n -X -S now-1minute || die "sacct does not answer"

log "up in $(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s: state in $STATE; use: . $STATE/env"
echo "$STATE"
