#!/usr/bin/env bash
# A simulated cluster on this machine: N network namespaces ("hosts") on one bridge.
#
#   netns_cluster.sh up N RATE   make hosts pkl5-h0 .. pkl5-h<N-1> (RATE: 10gbit, 1gbit,
#                                500mbit, ... or "none" for no limit); print the export lines
#                                for $MPIEXEC (default: mpiexec on PATH): MPICH or Intel MPI
#                                (hydra) or Open MPI (prterun)
#   netns_cluster.sh down        remove everything `up` made (harmless when nothing is up)
#   netns_cluster.sh env         print the export lines again (the cluster must be up)
#   netns_cluster.sh counters    bytes sent and received by each host's link
#   netns_cluster.sh exec HOST COMMAND...   run COMMAND inside HOST (own hostname too)
#
# Layout: namespace pkl5-sw holds the bridge pkl5-br; each host namespace pkl5-hI holds
# loopback and eth0 (address 10.215.0.<I+1>/24), one end of a veth pair whose other end
# (pkl5-pI) is a port of the bridge.  Both ends of each pair have a tbf qdisc at RATE, so
# each link is RATE in each direction.  No address, route or link is added to the namespace
# this script is run from: traffic between the hosts only ever reaches addresses made here.
# /etc/netns/pkl5-hI/hosts (bind-mounted on /etc/hosts by `ip netns exec`) names every host.
# `exec` runs the command in a new UTS namespace whose hostname is HOST, so that
# MPI_Get_processor_name and gethostname() tell the hosts apart.
#
# Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2 (ip, tc) and util-linux (unshare).
set -euo pipefail

PREFIX=pkl5
SWITCH="$PREFIX-sw"
BRIDGE="$PREFIX-br"
SUBNET=10.215.0
STATE=/run/pkl5-netns-cluster
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
  echo "netns_cluster.sh: $*" >&2
  exit 1
}

hosts() {
  # The host namespaces that exist now, in order.
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-h[0-9]+$" | sort -t h -k2 -n || true
}

burst_for() {
  # tbf bucket: 1 ms at RATE, at least 64 KiB (the largest GSO packet) plus a little.
  local rate=$1 bits
  bits=$(echo "$rate" | awk '{
    r = tolower($1); n = r + 0
    if (r ~ /gbit/) n *= 1e9; else if (r ~ /mbit/) n *= 1e6; else if (r ~ /kbit/) n *= 1e3
    printf "%d\n", n
  }')
  [ "$bits" -gt 0 ] || die "cannot read the rate '$rate' (use e.g. 10gbit, 1gbit, 500mbit)"
  local bytes=$((bits / 8 / 1000))
  [ "$bytes" -ge 70000 ] || bytes=70000
  echo "$bytes"
}

limit() {
  # limit NAMESPACE DEVICE RATE: a token bucket on DEVICE's egress.
  local ns=$1 dev=$2 rate=$3
  [ "$rate" = none ] && return 0
  ip -n "$ns" link set "$dev" txqueuelen 10000
  tc -n "$ns" qdisc replace dev "$dev" root tbf rate "$rate" burst "$(burst_for "$rate")" latency 100ms
}

flavour() {
  # mpich, impi or openmpi: which launcher the mpiexec is (hydra for the first two).
  local text
  text=$("$1" --version 2>&1 || true)
  case "$text" in
  *"Open MPI"* | *"Open RTE"* | *prterun*) echo openmpi ;;
  *Intel*) echo impi ;;
  *) echo mpich ;;
  esac
}

print_env() {
  local list n mpiexec slots
  list=$(hosts | paste -sd, -)
  [ -n "$list" ] || die "no cluster is up (run: $0 up N RATE)"
  n=$(hosts | wc -l)
  mpiexec=$(cat "$STATE/mpiexec" 2>/dev/null || echo mpiexec)
  echo "export PKL5_CLUSTER_HOSTS=$list"
  echo "export PKL5_CLUSTER_RATE=$(cat "$STATE/rate" 2>/dev/null || echo unknown)"
  # mpiexec runs inside pkl5-h0 (the daemons or proxies on the other hosts connect back to
  # it on the bridge) and starts them through netns_ssh.sh.  Between hosts the ranks use
  # TCP on eth0: UCX, the default of the MPICH wheel, would take shared memory between
  # namespaces of one machine (docs/benchmarks.md, "Across hosts").
  case "$(flavour "$mpiexec")" in
  openmpi)
    slots=$(hosts | sed 's/$/:64/' | paste -sd, -)
    echo "export PKL5_CLUSTER_LAUNCHER=openmpi"
    echo "export PKL5_CLUSTER_MPIEXEC='$HERE/netns_cluster.sh exec $PREFIX-h0 $mpiexec" \
      "--prtemca plm_ssh_agent $HERE/netns_ssh.sh --host $slots" \
      "--mca pml ob1 --mca btl tcp,sm,self --mca btl_tcp_if_include eth0" \
      "--prtemca oob_tcp_if_include eth0'"
    echo "# $n hosts; add --map-by ppr:K:node -n N: K consecutive ranks per host"
    ;;
  impi)
    echo "export PKL5_CLUSTER_LAUNCHER=hydra"
    echo "export PKL5_CLUSTER_MPIEXEC='$HERE/netns_cluster.sh exec $PREFIX-h0 $mpiexec" \
      "-launcher ssh -launcher-exec $HERE/netns_ssh.sh -iface eth0 -hosts $list" \
      "-genv I_MPI_FABRICS shm:ofi -genv FI_PROVIDER tcp -genv FI_TCP_IFACE eth0'"
    echo "# $n hosts; add -ppn K -n N: ranks 0..K-1 on pkl5-h0, K..2K-1 on pkl5-h1, ..."
    ;;
  *)
    echo "export PKL5_CLUSTER_LAUNCHER=hydra"
    echo "export PKL5_CLUSTER_MPIEXEC='$HERE/netns_cluster.sh exec $PREFIX-h0 $mpiexec" \
      "-launcher ssh -launcher-exec $HERE/netns_ssh.sh -iface eth0 -hosts $list" \
      "-genv MPIR_CVAR_CH4_NETMOD ofi -genv FI_PROVIDER tcp -genv FI_TCP_IFACE eth0'"
    echo "# $n hosts; add -ppn K -n N: ranks 0..K-1 on pkl5-h0, K..2K-1 on pkl5-h1, ..."
    ;;
  esac
}

up() {
  local n=${1:-} rate=${2:-}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "usage: $0 up N RATE (N: 1..200)"
  [ -n "$rate" ] || die "usage: $0 up N RATE (RATE: 10gbit, 1gbit, ... or none)"
  [ "$rate" = none ] || burst_for "$rate" >/dev/null
  [ "$(id -u)" = 0 ] || die "needs root to make network namespaces (uid $(id -u))"
  if [ -n "$(hosts)" ]; then
    if [ "$(hosts | wc -l)" = "$n" ] && [ "$(cat "$STATE/rate" 2>/dev/null)" = "$rate" ]; then
      print_env # already up as asked: harmless
      return 0
    fi
    down
  fi
  mkdir -p "$STATE"
  echo "$rate" >"$STATE/rate"
  command -v "${MPIEXEC:-mpiexec}" >"$STATE/mpiexec" 2>/dev/null || echo mpiexec >"$STATE/mpiexec"
  ip netns add "$SWITCH"
  ip -n "$SWITCH" link set lo up
  ip -n "$SWITCH" link add "$BRIDGE" type bridge
  ip -n "$SWITCH" link set "$BRIDGE" up
  local hostsfile i ns answer
  hostsfile=$(mktemp)
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$hostsfile"
  for ((i = 0; i < n; i++)); do
    echo "$SUBNET.$((i + 1)) $PREFIX-h$i" >>"$hostsfile"
  done
  for ((i = 0; i < n; i++)); do
    ns="$PREFIX-h$i"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both ends are made inside the switch namespace, then one end moves to the host.
    ip -n "$SWITCH" link add "$PREFIX-p$i" type veth peer name eth0 netns "$ns"
    ip -n "$SWITCH" link set "$PREFIX-p$i" master "$BRIDGE" up
    ip -n "$ns" addr add "$SUBNET.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    limit "$ns" eth0 "$rate"
    limit "$SWITCH" "$PREFIX-p$i" "$rate"
    mkdir -p "/etc/netns/$ns"
    cp "$hostsfile" "/etc/netns/$ns/hosts"
    echo "$ns" >"/etc/netns/$ns/hostname"
  done
  rm -f "$hostsfile"
  # Every host must answer before the cluster is declared up.
  for ((i = 1; i < n; i++)); do
    # A connection to a closed port is refused at once by a reachable host (no ping here).
    answer=$(ip netns exec "$PREFIX-h0" timeout 5 bash -c "exec 3<>/dev/tcp/$SUBNET.$((i + 1))/9" 2>&1 || true)
    [[ "$answer" == *refused* ]] || die "$PREFIX-h0 cannot reach $PREFIX-h$i: $answer"
  done
  print_env
}

down() {
  local ns
  for ns in $(hosts); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$SWITCH"; then
    ip netns del "$SWITCH"
  fi
  rm -rf "$STATE"
  rmdir /etc/netns 2>/dev/null || true
}

counters() {
  # One line per host: bytes and packets its eth0 received and sent (the kernel's counters).
  local ns
  for ns in $(hosts); do
    ip netns exec "$ns" sh -c 'cd /sys/class/net/eth0/statistics &&
      echo "$0 rx_bytes $(cat rx_bytes) rx_packets $(cat rx_packets)" \
        "tx_bytes $(cat tx_bytes) tx_packets $(cat tx_packets)"' "$ns"
  done
}

run_in() {
  local host=${1:-}
  shift || true
  [ -n "$host" ] && [ $# -gt 0 ] || die "usage: $0 exec HOST COMMAND..."
  hosts | grep -qx "$host" || die "no host $host (up: $(hosts | paste -sd' ' -))"
  exec ip netns exec "$host" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host" "$@"
}

case "${1:-}" in
up) up "${2:-}" "${3:-}" ;;
down) down ;;
env) print_env ;;
counters) counters ;;
exec)
  shift
  run_in "$@"
  ;;
*) die "usage: $0 up N RATE | down | env | counters | exec HOST COMMAND..." ;;
esac
