#!/usr/bin/env bash
# Runs a command inside a private network namespace, so nothing a test sends (WebRTC ICE
# candidates included) can leave this machine. Chromium gathers host candidates only when there
# is a default route, and werift ignores `lo` and `veth*` interface names, so the namespace gets a
# veth pair named lan0/lan1, 10.77.0.1/24 on lan0 and a default route pointing at nobody
# (DESIGN.md §9). Needs root (CI runs as root). Usage: test/netns.sh CMD [ARGS...]
set -euo pipefail
if [ "${STARLING_IN_NETNS:-}" = "1" ]; then exec "$@"; fi
if [ "$(id -u)" != "0" ]; then
  echo "test/netns.sh: network tests need root to create a private network namespace (unshare -n)" >&2
  exit 1
fi
export STARLING_IN_NETNS=1
export STARLING_NETNS_ADDR=10.77.0.1
exec unshare -n -- bash -c '
  set -e
  ip link set lo up
  ip link add lan0 type veth peer name lan1
  ip addr add 10.77.0.1/24 dev lan0
  ip link set lan0 up
  ip link set lan1 up
  ip route add default via 10.77.0.254 dev lan0 onlink
  exec "$@"
' netns "$@"
