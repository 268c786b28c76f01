#!/usr/bin/env bash
# Build the k3sc agent image (image/Dockerfile) with Docker, Podman or Buildah.
#
#   image/build.sh [--engine docker|podman|buildah] [--tag REF] [--base IMAGE | --debootstrap]
#                  [--ca-cert FILE] [-- EXTRA ENGINE ARGS...]
#
#   --engine       which builder to use; default: the first of docker (with a reachable daemon),
#                  podman, buildah
#   --tag          the image reference; default k3sc-agent:latest (the job template's default)
#   --base         the Debian bookworm base image; default debian:bookworm-slim
#   --debootstrap  make the base here instead of pulling one: `debootstrap --variant=minbase
#                  bookworm`, trimmed like the slim image and imported as localhost/k3sc-debian:bookworm
#                  (root; kept and reused; K3SC_REBUILD_BASE=1 remakes it); the build then never pulls
#   --ca-cert      a CA to trust while building (a TLS-intercepting proxy); never stored in the image
#
# Buildah runs with `--isolation chroot` (no OCI runtime needed, so it works as root inside an
# unprivileged container) and its configured storage (/etc/containers/storage.conf: overlay, or
# vfs where overlay cannot mount). Prints the build time and the image's size when done.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

die() {
    echo "error: $*" >&2
    exit 2
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
engine=""
tag="k3sc-agent:latest"
base="debian:bookworm-slim"
debootstrap=false
ca_cert=""
extra=()

while (($#)); do
    case $1 in
    --engine | --tag | --base | --ca-cert)
        (($# >= 2)) || die "$1 needs a value (see --help)"
        case $1 in
        --engine) engine=$2 ;;
        --tag) tag=$2 ;;
        --base) base=$2 ;;
        --ca-cert) ca_cert=$2 ;;
        esac
        shift 2
        ;;
    --debootstrap) debootstrap=true && shift ;;
    -h | --help) usage && exit 0 ;;
    --)
        shift
        extra=("$@")
        break
        ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

if [[ -z $engine ]]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        engine=docker
    elif command -v podman >/dev/null 2>&1; then
        engine=podman
    elif command -v buildah >/dev/null 2>&1; then
        engine=buildah
    else
        die "--engine: none of docker (with a running daemon), podman or buildah was found"
    fi
fi
case $engine in
docker | podman | buildah) command -v "$engine" >/dev/null 2>&1 || die "--engine: $engine is not installed" ;;
*) die "--engine must be docker, podman or buildah, not '$engine'" ;;
esac
[[ -n $tag ]] || die "--tag must not be empty"
[[ -z $ca_cert || -s $ca_cert ]] || die "--ca-cert: $ca_cert is not a readable, non-empty file"

# Make a Debian bookworm base like the official slim image: minbase, the updates and security
# suites in its sources, no documentation or apt caches.
debootstrap_base() {
    local ref=localhost/k3sc-debian:bookworm
    if [[ ${K3SC_REBUILD_BASE:-0} != 1 ]] && image_exists "$ref"; then
        echo "$ref"
        return
    fi
    command -v debootstrap >/dev/null 2>&1 || die "--debootstrap needs debootstrap (apt-get install debootstrap)"
    [[ $(id -u) == 0 ]] || die "--debootstrap must run as root"
    local root
    root=$(mktemp -d /var/tmp/k3sc-debian.XXXXXX)
    trap 'rm -rf "$root"' RETURN
    echo "debootstrap: making $ref in $root" >&2
    debootstrap --variant=minbase bookworm "$root" >&2
    local sources=$root/etc/apt/sources.list suites
    suites=$(sed -n 's#^deb \([^ ]*\)/debian bookworm main$#deb \1/debian bookworm-updates main\ndeb \1/debian-security bookworm-security main#p' "$sources")
    [[ -n $suites ]] || die "debootstrap wrote an unexpected $sources"
    echo "$suites" >>"$sources"
    cat >"$root/etc/dpkg/dpkg.cfg.d/k3sc-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/k3sc-no-languages"
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    rm -rf "$root"/usr/share/{man,info,locale}/* "$root"/var/lib/apt/lists/* \
        "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
    case $engine in
    buildah)
        local ctr mnt
        ctr=$(buildah from scratch)
        mnt=$(buildah mount "$ctr")
        tar -C "$root" -cf - . | tar -C "$mnt" -xpf -
        buildah umount "$ctr" >/dev/null
        buildah config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
        buildah commit --quiet "$ctr" "$ref" >/dev/null
        buildah rm "$ctr" >/dev/null
        ;;
    *) tar -C "$root" -cf - . | "$engine" import --change 'CMD ["/bin/bash"]' - "$ref" >/dev/null ;;
    esac
    echo "$ref"
}

image_exists() {
    case $engine in
    buildah) buildah inspect --type image "$1" >/dev/null 2>&1 ;;
    *) "$engine" image inspect "$1" >/dev/null 2>&1 ;;
    esac
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo_root/pyproject.toml" | head -n 1)
args=(--file "$repo_root/image/Dockerfile" --tag "$tag" --build-arg "K3SC_VERSION=$version")
if $debootstrap; then
    base=$(debootstrap_base)
    # docker build only pulls with --pull; buildah and podman are told never to.
    [[ $engine == docker ]] || args+=(--pull=never)
fi
args+=(--build-arg "BASE_IMAGE=$base")
[[ -z $ca_cert ]] || args+=(--secret "id=extra_ca,src=$ca_cert")
case $engine in
buildah) args+=(--isolation chroot --layers) ;;
docker) export DOCKER_BUILDKIT=1 ;; # RUN --mount needs BuildKit
esac

start=$(date +%s)
case $engine in
buildah) buildah bud "${args[@]}" "${extra[@]}" "$repo_root" ;;
*) "$engine" build "${args[@]}" "${extra[@]}" "$repo_root" ;;
esac
elapsed=$(($(date +%s) - start))

case $engine in
buildah) size=$(buildah images --format '{{.Size}}' "$tag" | head -n 1) ;;
*) size=$("$engine" image inspect --format '{{.Size}}' "$tag") ;;
esac
echo "built $tag with $engine from $base in ${elapsed}s; size $size"
