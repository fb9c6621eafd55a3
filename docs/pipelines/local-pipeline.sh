#!/bin/sh
# A rollout as a pipeline, on one machine: each stage runs every shard as its own process, then a
# gate merges their records and decides whether the next stage may start. It is what the GitHub
# Actions and Kubernetes examples beside it do with a matrix or an Indexed Job, and the e2e test
# (test/e2e/shards.test.ts) runs it against the local fleet.
#
#   PROVISION="provision" RECORDS=records sh local-pipeline.sh SHARDS STAGES INVENTORY [run options...]
#
# Exit 0: every stage ran and passed its gate. Exit 1: a gate stopped the rollout (its verdict is
# printed); the stages after it did not start.
set -u
if [ $# -lt 3 ]; then
  echo "usage: local-pipeline.sh SHARDS STAGES INVENTORY [provision run options...]" >&2
  exit 2
fi
shards=$1 stages=$2 inventory=$3
shift 3
provision=${PROVISION:-provision}
# Each rollout its own directory: a gate must never count an earlier rollout's records.
records=${RECORDS:-records/$(date +%Y%m%dT%H%M%S)}
mkdir -p "$records"

stage=1
while [ "$stage" -le "$stages" ]; do
  # From stage 2 on, each shard first checks the gate before it: passed, same hosts and policy.
  after=
  [ "$stage" -gt 1 ] && after="--after $records/merged-stage$((stage - 1)).json"
  pids=""
  k=1
  while [ "$k" -le "$shards" ]; do
    # A shard whose hosts failed exits 1 like any run; the gate, not the shard's exit code, decides.
    $provision run "$inventory" "$@" --shard "$k/$shards" --stage "$stage" $after --yes \
      --state-dir "$records/stage$stage-shard$k" >"$records/stage$stage-shard$k.log" 2>&1 &
    pids="$pids $!"
    k=$((k + 1))
  done
  for pid in $pids; do wait "$pid" || true; done
  # The gate counts every stage so far: the total budget spans the whole rollout.
  final=
  [ "$stage" -eq "$stages" ] && final=--final
  if ! $provision records merge "$records"/stage*-shard*/runs/*.json --check --stage "$stage" $final \
    -o "$records/merged-stage$stage.json"; then
    echo "gate after stage $stage: STOP; stages $((stage + 1))..$stages not started" >&2
    exit 1
  fi
  stage=$((stage + 1))
done
