#!/usr/bin/env bash
# Measures GET /api/v1/products through the gateway and GET /v1/products
# directly at inventory, one after the other against the same running stack
# (start it first with `make run` or `make run-full`). Needs wrk
# (apt-get install wrk). Usage: loadtest/wrk-products.sh [duration] [connections]
set -euo pipefail
duration=${1:-20s}
conns=${2:-32}
for target in "gateway http://127.0.0.1:8080/api/v1/products" "inventory http://127.0.0.1:8082/v1/products"; do
  set -- $target
  echo "== $1: $2 ($duration, $conns connections, 2 threads)"
  wrk -t2 -c"$conns" -d"$duration" --latency "$2" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
done
