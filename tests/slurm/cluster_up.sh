#!/usr/bin/env bash
# cluster_up.sh - start a one-node SLURM cluster on localhost for brainmr's SLURM test.
#
# Runs as root on Debian/Ubuntu. Installs slurmctld, slurmd, slurm-client, munge, slurmdbd and
# mariadb-server with apt-get when they are missing, then starts, each under its own pid file in
# $BRAINMR_SLURM_DIR/run:
#   munged     (own key and socket: a site's munge, if any, is left alone)
#   mariadbd   (own data dir, 127.0.0.1 only)      } accounting, so that `sacct` works: the
#   slurmdbd                                        } Snakemake SLURM plugin polls job states with it
#   slurmctld, slurmd -N localhost   with fake GPUs: Gres=gpu:fake:N, character devices made by
#                                    `mknod ... c 1 3` (the same device as /dev/null)
# All configuration lives in $BRAINMR_SLURM_DIR/etc. The daemons and our clients find it through
# SLURM_CONF, which this script prints as its last line:
#   eval "$(tests/slurm/cluster_up.sh | tail -n 1)"     # export SLURM_CONF=...
# Inside a job, Snakemake's jobstep plugin drops SLURM_* variables before its `srun`, so srun
# reads the default /etc/slurm/slurm.conf: that path becomes a symlink to ours. The script
# refuses to run where /etc/slurm/slurm.conf is anything else (a real SLURM host).
# Re-running while the cluster is up only re-checks it. cluster_down.sh stops what this started.
#
# Knobs (environment):
#   BRAINMR_SLURM_DIR        state, logs, pid files, config   (default /tmp/brainmr-slurm)
#   BRAINMR_SLURM_GPUS       number of fake GPUs               (default 2)
#   BRAINMR_SLURM_PARTITION  the partition                     (default brainmr)
#   BRAINMR_SLURM_ACCOUNT    the account root submits under    (default brainmr)
#   BRAINMR_SLURM_MEM_MB     memory the node advertises        (default 262144: a GPU node's,
#                            so that rules' real requests schedule; not enforced, no cgroups)
#   BRAINMR_SLURM_PORT       first of four TCP ports: slurmctld, slurmd, slurmdbd, mariadb
#                            (default 16817; not SLURM's defaults, so a site's daemons never clash)
set -euo pipefail

DIR=${BRAINMR_SLURM_DIR:-/tmp/brainmr-slurm}
NGPU=${BRAINMR_SLURM_GPUS:-2}
PART=${BRAINMR_SLURM_PARTITION:-brainmr}
ACCOUNT=${BRAINMR_SLURM_ACCOUNT:-brainmr}
NODE_MEM=${BRAINMR_SLURM_MEM_MB:-262144}
PORT=${BRAINMR_SLURM_PORT:-16817}
CLUSTER=brainmr
CTLD_PORT=$PORT
SLURMD_PORT=$((PORT + 1))
DBD_PORT=$((PORT + 2))
DB_PORT=$((PORT + 3))
DB_PASS=brainmr-local # the database listens on 127.0.0.1 only and holds nothing but test jobs
ETC="$DIR/etc"
RUN="$DIR/run"
LOG="$DIR/log"
MUNGE_SOCKET="$DIR/munge/munge.socket"
export SLURM_CONF="$ETC/slurm.conf"
START=$(date +%s)

say() { printf '[cluster_up %3ss] %s\n' "$(($(date +%s) - START))" "$*" >&2; }
fail() {
  say "ERROR: $*"
  for name in slurmctld slurmd slurmdbd; do
    [ -f "$LOG/$name.log" ] && { echo "--- last lines of $LOG/$name.log" >&2; tail -n 15 "$LOG/$name.log" >&2; }
  done
  exit 1
}

# is_running NAME COMM: the pid in $RUN/NAME.pid is alive, not a zombie, and runs COMM.
# (The comm check guards against a recycled pid after a reboot or a crash.)
is_running() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# wait_for SECONDS COMMAND...: retry COMMAND (each try capped at 5 s) until it succeeds.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  while [ "$(date +%s)" -lt "$deadline" ]; do
    timeout 5 "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

[ "$(id -u)" = 0 ] || fail "must run as root (it starts slurmd and installs packages)"
if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$ETC/slurm.conf" ]; then
  fail "/etc/slurm/slurm.conf exists and is not ours: this machine has its own SLURM; not touching it"
fi
mkdir -p "$ETC" "$RUN" "$LOG" "$DIR/state/ctld" "$DIR/state/d" "$DIR/gpu" "$DIR/munge"

# --- 1. packages -------------------------------------------------------------------------------
packages=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No init system in a container: package scripts cannot start the daemons; we start them below.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$LOG/apt.log" 2>&1 ||
    { tail -n 20 "$LOG/apt.log" >&2; fail "apt-get install failed"; }
fi
say "slurm $(dpkg-query -W -f='${Version}' slurmctld), munge $(dpkg-query -W -f='${Version}' munge)"

# --- 2. munge (own key and socket) -----------------------------------------------------------
chown munge:munge "$DIR/munge"
chmod 755 "$DIR/munge" # munged requires a socket directory everyone can traverse
if [ ! -s "$DIR/munge/munge.key" ]; then
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=128 count=1 status=none
  chown munge:munge "$DIR/munge/munge.key"
  chmod 400 "$DIR/munge/munge.key"
fi
if ! is_running munged munged; then
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" "$DIR/munge/munged.pid"
  runuser -u munge -- /usr/sbin/munged --key-file="$DIR/munge/munge.key" \
    --socket="$MUNGE_SOCKET" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" ||
    fail "munged did not start (see $DIR/munge/munged.log)"
  wait_for 10 test -s "$DIR/munge/munged.pid" || fail "munged wrote no pid file"
  cp "$DIR/munge/munged.pid" "$RUN/munged.pid"
  say "started munged (pid $(cat "$RUN/munged.pid"))"
fi
munge --socket="$MUNGE_SOCKET" -n | unmunge --socket="$MUNGE_SOCKET" >/dev/null ||
  fail "munge round trip failed"

# --- 3. configuration ------------------------------------------------------------------------
# Register the node as "localhost" (slurmd -N localhost) so the machine's hostname never matters.
# CPUs: the real topology (slurmd -C), so jobs never oversubscribe the cores. Memory: advertise
# $NODE_MEM (SlurmdParameters=config_overrides keeps the node from draining for "low memory"), so
# the rules' real requests (tens of GB for DreamBooth) are schedulable; nothing enforces them.
node_line=$(slurmd -C | head -n 1)
topology=$(tr ' ' '\n' <<<"$node_line" | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
gres_types="" node_gres="" gres_line=""
if [ "$NGPU" -gt 0 ]; then
  for i in $(seq 0 $((NGPU - 1))); do
    [ -c "$DIR/gpu/nvidia$i" ] || { rm -f "$DIR/gpu/nvidia$i"; mknod "$DIR/gpu/nvidia$i" c 1 3; }
  done
  gres_types="GresTypes=gpu"
  node_gres="Gres=gpu:fake:$NGPU"
  gres_line="NodeName=localhost Name=gpu Type=fake File=$DIR/gpu/nvidia[0-$((NGPU - 1))]"
fi

slurm_conf="# written by brainmr tests/slurm/cluster_up.sh
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Plain process tracking, no cgroups: works in containers.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
# Finished jobs stay visible to squeue for 10 min (the plugin's squeue mode needs >= 120 s).
MinJobAge=600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# our munged's socket for the slurmdbd connection too (AuthInfo does not cover it)
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
# keep sbatch --comment (Snakemake writes rule_<name>_wildcards_<...> there) for sacct
AccountingStoreFlags=job_comment
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
$gres_types
NodeName=localhost $topology RealMemory=$NODE_MEM $node_gres State=UNKNOWN
PartitionName=$PART Nodes=localhost Default=YES MaxTime=INFINITE State=UP"

dbd_conf="# written by brainmr tests/slurm/cluster_up.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=brainmr_slurm_acct"

# write_conf PATH MODE CONTENT: rewrite only when changed; report whether it changed.
config_changed=0
write_conf() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$3" ]; then return 0; fi
  printf '%s\n' "$3" >"$1"
  chmod "$2" "$1"
  config_changed=1
}
write_conf "$ETC/slurm.conf" 644 "$slurm_conf"
write_conf "$ETC/gres.conf" 644 "AutoDetect=off
$gres_line"
write_conf "$ETC/slurmdbd.conf" 600 "$dbd_conf"
mkdir -p /etc/slurm
[ -L /etc/slurm/slurm.conf ] || ln -s "$ETC/slurm.conf" /etc/slurm/slurm.conf
if [ "$config_changed" = 1 ]; then
  say "configuration written to $ETC"
  for d in slurmd slurmctld slurmdbd; do # a running daemon would keep the old configuration
    if is_running "$d" "$d"; then
      pid=$(cat "$RUN/$d.pid")
      kill -TERM "$pid"
      wait_for 20 bash -c "! kill -0 $pid" || fail "$d (pid $pid) did not stop for the reconfiguration"
      say "stopped $d (pid $pid) to reload the configuration"
    fi
  done
fi

# --- 4. accounting: MariaDB + slurmdbd ------------------------------------------------------
DB="$DIR/mariadb"
DB_SOCKET="$DB/mariadb.sock"
mkdir -p "$DB"
chown mysql:mysql "$DB"
if [ ! -d "$DB/data/mysql" ]; then
  say "initialising MariaDB in $DB/data"
  mariadb-install-db --user=mysql --datadir="$DB/data" --skip-test-db \
    >"$LOG/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed (see $LOG/mariadb-install.log)"
fi
if ! is_running mariadb mariadbd; then
  rm -f "$DB_SOCKET"
  # --no-defaults: ignore the distribution's my.cnf; small buffers; TCP on 127.0.0.1 only.
  nohup mariadbd --no-defaults --user=mysql --datadir="$DB/data" --socket="$DB_SOCKET" \
    --pid-file="$DB/mariadbd.pid" --log-error="$LOG/mariadb.log" \
    --bind-address=127.0.0.1 --port="$DB_PORT" \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=16M --innodb-lock-wait-timeout=900 >/dev/null 2>&1 &
  echo $! >"$RUN/mariadb.pid"
  wait_for 30 mariadb -S "$DB_SOCKET" -e 'select 1' || fail "MariaDB did not start (see $LOG/mariadb.log)"
  say "started mariadbd (pid $(cat "$RUN/mariadb.pid"))"
fi
mariadb -S "$DB_SOCKET" -e "
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON brainmr_slurm_acct.* TO 'slurm'@'localhost';
  GRANT ALL ON brainmr_slurm_acct.* TO 'slurm'@'127.0.0.1';" || fail "could not create the slurm database user"
if ! is_running slurmdbd slurmdbd; then
  rm -f "$RUN/slurmdbd.pid"
  slurmdbd || fail "slurmdbd did not start"
  wait_for 10 test -s "$RUN/slurmdbd.pid" || fail "slurmdbd wrote no pid file"
  say "started slurmdbd (pid $(cat "$RUN/slurmdbd.pid"))"
fi
wait_for 30 sacctmgr -n list cluster || fail "slurmdbd does not answer"
# Register the cluster, the account and root's association, each only when missing.
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" ||
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" ||
  sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=brainmr Organization=brainmr >/dev/null
sacctmgr -n -P list assoc cluster="$CLUSTER" user=root format=account | grep -qx "$ACCOUNT" ||
  sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" >/dev/null

# --- 5. slurmctld + slurmd --------------------------------------------------------------------
if ! is_running slurmctld slurmctld; then
  rm -f "$RUN/slurmctld.pid"
  slurmctld || fail "slurmctld did not start"
  wait_for 10 test -s "$RUN/slurmctld.pid" || fail "slurmctld wrote no pid file"
  say "started slurmctld (pid $(cat "$RUN/slurmctld.pid"))"
fi
wait_for 30 bash -c 'scontrol ping | grep -q UP' || fail "slurmctld does not answer"
if ! is_running slurmd slurmd; then
  rm -f "$RUN/slurmd.pid"
  slurmd -N localhost || fail "slurmd did not start"
  wait_for 10 test -s "$RUN/slurmd.pid" || fail "slurmd wrote no pid file"
  say "started slurmd (pid $(cat "$RUN/slurmd.pid"))"
fi
state=""
for _ in $(seq 150); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null | head -n 1)
  case "$state" in
    idle | mixed | allocated) break ;;
    drain* | down*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
  esac
  sleep 0.2
done
case "$state" in idle | mixed | allocated) ;; *) fail "node localhost is '$state'" ;; esac

# --- 6. smoke test ------------------------------------------------------------------------
out=$(srun -A "$ACCOUNT" -p "$PART" -t 1 hostname 2>&1) || fail "srun failed: $out"
if [ "$NGPU" -gt 0 ]; then
  # shellcheck disable=SC2016  # expanded inside the job
  gpus=$(srun -A "$ACCOUNT" -p "$PART" -t 1 --gpus=1 bash -c 'echo "$CUDA_VISIBLE_DEVICES"' 2>&1) ||
    fail "srun --gpus=1 failed: $gpus"
  say "srun --gpus=1 ok (CUDA_VISIBLE_DEVICES=$gpus)"
fi
sacct -X -n -P >/dev/null || fail "sacct failed"
sinfo -o '%P %a %D %T %N %c %m %G' >&2
say "cluster up: partition $PART, account $ACCOUNT, $NGPU fake GPU(s), pids in $RUN"
echo "export SLURM_CONF=$SLURM_CONF"
