#!/usr/bin/env bash
# Builds the uringsend image (docker/Dockerfile) — what `make image` runs.
#
#   docker/build-image.sh                 # tag uringsend:dev
#   IMAGE=registry.example/uringsend:1.0 docker/build-image.sh
#   ENGINE=podman docker/build-image.sh   # force the engine (docker or podman)
#
# 1. Builds static binaries into docker/bin/: CGO_ENABLED=0, -trimpath,
#    -ldflags "-s -w", for cmd/uringsend and (when it exists) cmd/uringproxy.
#    GOARCH from the environment selects the image's architecture.
# 2. Builds the image with `docker build` when a Docker engine answers
#    (`docker info` succeeds), else with `podman build`. FROM scratch pulls
#    nothing, so this works offline.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

IMAGE=${IMAGE:-uringsend:dev}
GO=${GO:-go}
start=$(date +%s)

log() { echo "build-image: $*" >&2; }

# --- binaries ---------------------------------------------------------------
cmds=()
for c in uringsend uringproxy; do
	if compgen -G "cmd/$c/*.go" >/dev/null; then
		cmds+=("./cmd/$c")
	elif [ "$c" = uringsend ]; then
		log "cmd/uringsend does not exist: nothing to put in the image"
		exit 1
	else
		log "cmd/$c does not exist yet: the image gets no $c"
	fi
done

rm -rf docker/bin
mkdir -p docker/bin
log "go build ${cmds[*]} -> docker/bin/ (GOOS=linux GOARCH=${GOARCH:-$($GO env GOARCH)}, static)"
CGO_ENABLED=0 GOOS=linux "$GO" build -trimpath -ldflags "-s -w" -o docker/bin/ "${cmds[@]}"

# --- engine -----------------------------------------------------------------
engine=${ENGINE:-}
if [ -z "$engine" ]; then
	if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
		engine=docker
	elif command -v podman >/dev/null 2>&1; then
		engine=podman
	else
		log "no Docker engine answers (docker info failed) and podman is not installed"
		log "install one, e.g. apt-get install -y podman"
		exit 1
	fi
fi

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
else
	created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi

args=(build -t "$IMAGE" -f docker/Dockerfile
	--build-arg "VERSION=$version"
	--build-arg "REVISION=$revision"
	--build-arg "CREATED=$created")
if [ -n "${GOARCH:-}" ]; then
	args+=(--platform "linux/$GOARCH")
fi
log "$engine ${args[*]} docker"
"$engine" "${args[@]}" docker

log "built $IMAGE with $engine in $(($(date +%s) - start))s"
"$engine" image ls "$IMAGE" >&2 || true
