#!/usr/bin/env bash
# scale.sh BIN CONSUL [PAIRS] — the checkout at saturation on PostgreSQL
# with one replica of order, inventory and payment against two (bench
# -replicas), side by side in one run: PAIRS pairs (default 3), one replica
# first in odd pairs, two first in even ones. Both runs start Consul (the
# gateway finds the replicas there), so the only difference is the
# replicas. make bench-scale-out runs it.
#
#   deploy/bench/scale.sh .run/bin .run/tools/consul 3 | tee scale.log
#
# FLAGS sets bench's load and window (default: -rate 0 -concurrency 64
# -warmup 5s -duration 20s).
set -euo pipefail

bin=${1:?usage: scale.sh BIN CONSUL [PAIRS]}
consul=${2:?usage: scale.sh BIN CONSUL [PAIRS]}
pairs=${3:-3}
read -r -a flags <<<"${FLAGS:--rate 0 -concurrency 64 -warmup 5s -duration 20s}"

for i in $(seq "$pairs"); do
	order=(1 2)
	if ((i % 2 == 0)); then order=(2 1); fi
	for replicas in "${order[@]}"; do
		echo "== replicas $replicas: ${flags[*]} (pair $i), $(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg)"
		"$bin/bench" -bin "$bin" -mode full -consul "$consul" -replicas "$replicas" -cost -top 0 "${flags[@]}"
		echo "== end $(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	done
done
