#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try profiles/slurm for real:
#
#   sudo bash scripts/slurm-local.sh up       # install (Debian slurm-wlm, munge) where missing, start, wait idle
#   eval "$(bash scripts/slurm-local.sh env)" # SLURM_CONF for sbatch/squeue/scontrol in this shell
#   snakemake --profile profiles/slurm --slurm-no-account --slurm-status-command squeue
#   sudo bash scripts/slurm-local.sh status   # daemons, node state, queue
#   sudo bash scripts/slurm-local.sh down     # stop exactly the daemons `up` started (by pid)
#
# Everything lives under $SLURM_LOCAL_DIR (default /tmp/gos-build-slurm): a munge key
# made here, slurm.conf, state, spool, pid and log files. One node (this host) with the
# machine's CPUs and memory; proctrack/linuxproc, task/none, no accounting daemon
# (so job states come from squeue; MinJobAge keeps finished jobs visible for it).
# Needs root (munged and slurmd run as root here).
#
# Where /etc/slurm/slurm.conf does not exist, `up` links it to the file here (and `down`
# removes that link): snakemake-executor-plugin-slurm-jobstep strips SLURM_CONF from the
# environment of the `srun` it runs inside each job, so srun only finds the default path.
set -euo pipefail
DIR="${SLURM_LOCAL_DIR:-/tmp/gos-build-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"

say() { echo "slurm-local: $*" >&2; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
      && command -v sbatch >/dev/null; then
    return
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "needs the Debian packages slurm-wlm and munge (run as root on Debian/Ubuntu)"; exit 2
  fi
  say "installing Debian slurm-wlm and munge"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
  local cpus mem
  cpus="$(nproc)"
  mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"  # MB, 10 % kept for the system
  mkdir -p "$DIR"/{state,spool,log,munge}
  cat > "$CONF" <<EOF
# written by scripts/slurm-local.sh: a one-node cluster on $HOST
ClusterName=gosbuild
SlurmctldHost=$HOST
SlurmUser=root
SlurmctldPort=${SLURM_LOCAL_PORT:-16817}
SlurmdPort=$(( ${SLURM_LOCAL_PORT:-16817} + 1 ))
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

pid_of() { [ -f "$DIR/$1.pid" ] && cat "$DIR/$1.pid" || true; }
alive() { local p; p="$(pid_of "$1")"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

up() {
  install_packages
  if alive slurmctld || alive slurmd || alive munged; then say "already up in $DIR"; status; return; fi
  rm -rf "$DIR"
  write_conf
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chmod 700 "$DIR/munge"
  chmod 400 "$DIR/munge/munge.key"
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed"
  export SLURM_CONF="$CONF"
  if [ ! -e /etc/slurm/slurm.conf ]; then
    mkdir -p /etc/slurm
    ln -s "$CONF" /etc/slurm/slurm.conf
    echo /etc/slurm/slurm.conf > "$DIR/linked"
  fi
  slurmctld -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 1 60); do
    state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1 || true)"
    if [ "$state" = idle ]; then say "up: node $HOST idle ($(nproc) CPUs); SLURM_CONF=$CONF"; return; fi
    sleep 1
  done
  say "the node did not become idle (state '${state:-none}'); logs in $DIR/log"; status; exit 1
}

down() {
  local stopped=0
  for d in slurmd slurmctld munged; do
    local p; p="$(pid_of "$d")"
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      kill "$p"
      for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
      stopped=$((stopped + 1))
    fi
    rm -f "$DIR/$d.pid"
  done
  if [ -f "$DIR/linked" ] && [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
    rm -f /etc/slurm/slurm.conf "$DIR/linked"
  fi
  say "down: stopped $stopped daemon(s) started from $DIR"
}

status() {
  for d in munged slurmctld slurmd; do
    if alive "$d"; then echo "$d: running (pid $(pid_of "$d"))"; else echo "$d: not running"; fi
  done
  if alive slurmctld; then
    SLURM_CONF="$CONF" sinfo -N -o "%N %T %c %m" || true
    SLURM_CONF="$CONF" squeue -o "%i %j %T %M" || true
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
