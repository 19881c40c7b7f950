# shellcheck shell=bash
# Shared by start-local-slurm.sh and stop-local-slurm.sh (sourced; needs $PIDS).

# The PID recorded for $1, if that process is alive and still runs the $1 binary.
alive_pid() {
    local name=$1 pid argv0
    [[ -s $PIDS/$name.pid ]] || return 1
    pid=$(<"$PIDS/$name.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    # The process must still run that daemon: its argv[0] (as launched) names it.
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || return 1
    [[ $(basename "$argv0") == "$name" ]] || return 1
    echo "$pid"
}
