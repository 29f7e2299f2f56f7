#!/usr/bin/env bash
# cluster_down.sh - stop what cluster_up.sh started, by the pid files in $BRAINMR_SLURM_DIR/run
# (never by process name: other SLURM or MariaDB processes on the machine are left alone), and
# remove the /etc/slurm/slurm.conf symlink it made.
#   BRAINMR_SLURM_DIR    as for cluster_up.sh (default /tmp/brainmr-slurm)
#   BRAINMR_SLURM_PURGE  1 = also delete $BRAINMR_SLURM_DIR (job state, logs, the database)
set -uo pipefail

DIR=${BRAINMR_SLURM_DIR:-/tmp/brainmr-slurm}
RUN="$DIR/run"
export SLURM_CONF="$DIR/etc/slurm.conf"

say() { echo "[cluster_down] $*" >&2; }

# running PID: alive and not a zombie
running() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# stop NAME COMM: SIGTERM the pid in $RUN/NAME.pid if it still runs COMM, SIGKILL after 15 s.
stop() {
  local file="$RUN/$1.pid" pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null)
  if [ -n "$pid" ] && running "$pid"; then
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$2" ]; then
      say "pid $pid in $file now runs '$(cat "/proc/$pid/comm")', not $2: stale pid file, left alone"
    else
      kill -TERM "$pid"
      for _ in $(seq 150); do running "$pid" || break; sleep 0.1; done
      if running "$pid"; then
        say "$1 (pid $pid) ignored SIGTERM: SIGKILL"
        kill -KILL "$pid"
      fi
      say "stopped $1 (pid $pid)"
    fi
  fi
  rm -f "$file"
}

# Cancel our cluster's unfinished jobs first so no job outlives slurmd.
if [ -f "$RUN/slurmctld.pid" ] && running "$(cat "$RUN/slurmctld.pid")"; then
  jobs=$(squeue -h -t PENDING,RUNNING,SUSPENDED,CONFIGURING,COMPLETING -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 100); do
      [ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

stop slurmd slurmd
stop slurmctld slurmctld
stop slurmdbd slurmdbd
stop mariadb mariadbd
stop munged munged

# the symlink cluster_up.sh made, and only that
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$DIR/etc/slurm.conf" ]; then
  rm -f /etc/slurm/slurm.conf
  rmdir /etc/slurm 2>/dev/null || true
  say "removed the /etc/slurm/slurm.conf symlink"
fi

if [ "${BRAINMR_SLURM_PURGE:-0}" = 1 ]; then
  rm -rf "$DIR"
  say "removed $DIR"
fi
say "done"
