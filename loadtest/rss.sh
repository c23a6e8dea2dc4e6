#!/usr/bin/env bash
# Samples the resident set size (VmRSS, kB) of every process the launcher
# started, every INTERVAL seconds (default 60), as tab-separated lines:
# a soak's memory over time. The pids come from the launcher's output
# ("started <name> pid=<pid>" lines), saved to a file:
#
#   .run/bin/launcher -mode full ... > launcher.log 2>&1 &
#   loadtest/rss.sh launcher.log rss.tsv &
#
# It runs until killed.
set -euo pipefail
log=$1
out=$2
interval=${INTERVAL:-60}
pids=$(grep -o "started [a-z0-9-]* pid=[0-9]*" "$log" | sed 's/started \(.*\) pid=\(.*\)/\1=\2/')
header="time"
for p in $pids; do header="$header\t${p%%=*}"; done
echo -e "$header" > "$out"
while true; do
  line="$(date -u +%H:%M:%S)"
  for p in $pids; do
    line="$line\t$(awk '/VmRSS/ {print $2}' "/proc/${p##*=}/status" 2>/dev/null || echo gone)"
  done
  echo -e "$line" >> "$out"
  sleep "$interval"
done
