#!/usr/bin/env bash
# make test-cluster: bring up the single-node SLURM (up.sh), run tests/test_cluster.py against it
# (the micro config through --profile profiles/slurm and locally; tables compared), and bring it
# down again (down.sh), also when something fails. Needs root (see up.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
finish() {
    local rc=$?
    bash .test/slurm/down.sh || rc=1
    echo "test-cluster: $(($(date +%s) - start)) s, exit $rc"
    exit $rc
}
trap finish EXIT
bash .test/slurm/up.sh
# shellcheck source=/dev/null
source .test/slurm/state/env.sh
export SINKPRUNE_TEST_SLURM=1
python -m pytest -q -p no:cacheprovider tests/test_cluster.py
