#!/usr/bin/env bash
# compare.sh BEFORE_BIN AFTER_BIN [PAIRS] — the checkout benchmark of two
# builds side by side in one run: PAIRS pairs (default 3) in each of four
# loads, SQLite and PostgreSQL, each at saturation and at a fixed open-loop
# rate; before first in odd pairs, after first in even ones, so that
# neither build always runs on the heels of the other. The same bench
# program (the after build's) drives both; -cost reports the cost per
# completed saga. Timings are noisy: compare the ratios of one run, on a
# machine doing nothing else (a compile beside it moves a run by 20 %).
#
#   git worktree add /tmp/before <commit>
#   (cd /tmp/before && go build -o /path/to/microshop/.run/bin-before/ \
#     ./services/{gateway,order,inventory,payment,psp}/cmd/... ./deploy/local/cmd/{broker,launcher})
#   make bench-compare BEFORE=.run/bin-before COMPARE_PAIRS=4 | tee compare.log
#
# (make bench-compare builds this tree and runs this script.) The older
# build's launcher must know the flags bench gives it (-postgres-setting:
# commit 8251095 and later; that commit's go.work also needs today's
# replace line of google.golang.org/genproto to build).
#
# RATE_EMBEDDED and RATE_FULL set the open-loop rates (default: make
# bench-checkout's), FLAGS the window (default: -warmup 5s -duration 20s),
# LOADS a subset of the loads (default: "full-saturation full-rate
# embedded-saturation embedded-rate").
set -euo pipefail

before=${1:?usage: compare.sh BEFORE_BIN AFTER_BIN [PAIRS]}
after=${2:?usage: compare.sh BEFORE_BIN AFTER_BIN [PAIRS]}
pairs=${3:-3}
rate_embedded=${RATE_EMBEDDED:-69}
rate_full=${RATE_FULL:-58}
read -r -a window <<<"${FLAGS:--warmup 5s -duration 20s}"
bench=$after/bench

declare -A loads=(
	[full-saturation]="-mode full -rate 0 -concurrency 64"
	[full-rate]="-mode full -rate $rate_full"
	[embedded-saturation]="-mode embedded -rate 0 -concurrency 64"
	[embedded-rate]="-mode embedded -rate $rate_embedded"
)
for load in ${LOADS:-full-saturation full-rate embedded-saturation embedded-rate}; do
	[[ -n ${loads[$load]:-} ]] || { echo "compare.sh: unknown load $load" >&2; exit 2; }
	read -r -a args <<<"${loads[$load]}"
	for i in $(seq "$pairs"); do
		order=("$before" "$after")
		if ((i % 2 == 0)); then order=("$after" "$before"); fi
		for b in "${order[@]}"; do
			echo "== $b: ${args[*]} (pair $i), $(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg)"
			"$bench" -bin "$b" "${args[@]}" -cost -top 0 "${window[@]}"
			echo "== end $(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg)"
		done
	done
done
