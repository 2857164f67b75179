#!/usr/bin/env bash
# `make compose-up` / `make compose-down`: the 3-node compose cluster of deploy/docker-compose.yml.
#
#   deploy/compose.sh up     builds the image if it is missing, makes the demo license, starts
#                            the three nodes and waits until Docker reports all three healthy
#   deploy/compose.sh down   removes the containers, the network and the volumes (the data)
#
# COMPOSE_PROJECT_NAME (default quorumlm) names the project; QLM_PORT_1..3 the host ports.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-quorumlm}
export QLM_IMAGE=${QLM_IMAGE:-quorumlm:latest}
export QLM_DEMO_DIR=${QLM_DEMO_DIR:-$PWD/deploy/demo}
HEALTHY_TIMEOUT=${HEALTHY_TIMEOUT:-120}

# docker compose (v2 plugin) where it exists, else docker-compose (v1).
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -f deploy/docker-compose.yml "$@"
    else
        docker-compose -f deploy/docker-compose.yml "$@"
    fi
}

wait_healthy() {
    local deadline=$((SECONDS + HEALTHY_TIMEOUT)) states
    while true; do
        states=$(for id in $(compose ps -q); do
            docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id"
        done)
        if [ "$(grep -c ' healthy$' <<<"$states")" = 3 ]; then
            echo "$states"
            return 0
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "compose: the nodes are not all healthy after ${HEALTHY_TIMEOUT}s:" >&2
            echo "$states" >&2
            compose logs --tail 30 >&2
            return 1
        fi
        sleep 1
    done
}

case "${1:-}" in
up)
    if ! docker image inspect "$QLM_IMAGE" >/dev/null 2>&1; then
        IMAGE=$QLM_IMAGE deploy/build-image.sh
    fi
    IMAGE=$QLM_IMAGE deploy/make-demo-license.sh "$QLM_DEMO_DIR"
    compose up -d
    echo "waiting for three healthy nodes (gRPC health)"
    wait_healthy
    p1=${QLM_PORT_1:-7400} p2=${QLM_PORT_2:-7410} p3=${QLM_PORT_3:-7420}
    cat <<TXT

QuorumLM: 3 nodes up (project $COMPOSE_PROJECT_NAME). From this host:

  export QLM_SERVERS=127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3
  export QLM_ADMIN_TOKEN_FILE=$QLM_DEMO_DIR/admin.token
  target/static/x86_64-unknown-linux-gnu/release/qlm status     # or any qlm build
  docker run --rm --network host --entrypoint /usr/local/bin/qlm $QLM_IMAGE --servers \$QLM_SERVERS status

make compose-down removes the nodes and their data.
TXT
    ;;
down)
    compose down --volumes --remove-orphans
    ;;
wait)
    wait_healthy
    ;;
*)
    echo "usage: $0 up|down|wait" >&2
    exit 2
    ;;
esac
