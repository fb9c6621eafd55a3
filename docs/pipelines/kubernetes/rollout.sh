#!/bin/sh
# Drives the stages with kubectl: stage Job, wait, gate Job, wait; a failed gate stops the rollout.
# Needs: a ConfigMap provision-config (inventory.yaml, site.yaml), a Secret provision-ssh
# (id_ed25519, known_hosts) and a ReadWriteMany PVC provision-records, in the current namespace.
#   sh rollout.sh 3        # three stages: batches 1,10%,100%
set -eu
stages=${1:?usage: rollout.sh STAGES}
here=$(dirname "$0")
# One id per rollout, in every Job's name and the records' directory: a second rollout never
# reuses the first's Jobs or counts its records.
run=$(date +%Y%m%d%H%M%S)

# Waits until every pod of the Job ended, succeeded or failed (a failed Job never becomes
# "complete", so waiting for that alone would hang); prints how many succeeded. At most 2 hours.
finished() {
  job=$1 pods=$2 waited=0
  while [ "$waited" -lt 7200 ]; do
    ok=$(kubectl get "job/$job" -o jsonpath='{.status.succeeded}')
    bad=$(kubectl get "job/$job" -o jsonpath='{.status.failed}')
    if [ $((${ok:-0} + ${bad:-0})) -ge "$pods" ]; then
      echo "${ok:-0}"
      return 0
    fi
    sleep 10
    waited=$((waited + 10))
  done
  echo "job/$job did not finish within 2 hours" >&2
  return 1
}

stage=1
while [ "$stage" -le "$stages" ]; do
  final=
  [ "$stage" -eq "$stages" ] && final=--final
  sed "s/@RUN@/$run/g; s/@STAGE@/$stage/g" "$here/stage-job.yaml" | kubectl apply -f -
  # Every shard pod succeeds; one that wrote no record is reported missing by the gate.
  finished "provision-$run-stage-$stage" 3 >/dev/null
  sed "s/@RUN@/$run/g; s/@STAGE@/$stage/g; s/@FINAL@/$final/g" "$here/gate-job.yaml" | kubectl apply -f -
  passed=$(finished "provision-$run-gate-$stage" 1)
  kubectl logs "job/provision-$run-gate-$stage"
  if [ "$passed" != "1" ]; then
    echo "gate after stage $stage: STOP; stages $((stage + 1))..$stages not started" >&2
    exit 1
  fi
  stage=$((stage + 1))
done
