#!/usr/bin/env bash
# Render deploy/nginx/holdfast.conf.template for a fleet of holdfast nodes, to stdout.
#
#   deploy/nginx/render.sh [--listen ADDR] [--max-fails N] [--fail-timeout T] HOST:PORT...
#
#   --listen ADDR        what nginx listens on: 80, 0.0.0.0:80, 127.0.0.1:8080 (default 80)
#   --max-fails N        failed attempts before a node is skipped (default 1)
#   --fail-timeout T     how long it is skipped, nginx time syntax (default 10s)
#
# Example: deploy/nginx/render.sh --listen 80 10.0.0.11:8080 10.0.0.12:8080 > /etc/nginx/conf.d/holdfast.conf
set -euo pipefail

listen=80
max_fails=1
fail_timeout=10s
servers=()
while (($# > 0)); do
  case "$1" in
    --listen) listen=${2:?--listen needs a value}; shift 2 ;;
    --max-fails) max_fails=${2:?--max-fails needs a value}; shift 2 ;;
    --fail-timeout) fail_timeout=${2:?--fail-timeout needs a value}; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "render.sh: unknown option $1" >&2; exit 2 ;;
    *) servers+=("$1"); shift ;;
  esac
done
if ((${#servers[@]} == 0)); then
  echo "render.sh: name at least one node (HOST:PORT)" >&2
  exit 2
fi
# Values end up in nginx syntax: refuse anything that could close a directive or open a block.
for v in "$listen" "$max_fails" "$fail_timeout" "${servers[@]}"; do
  # (IPv6 needs the brackets: [::1]:8080.)
  re='^[][A-Za-z0-9.:_-]+$'
  if [[ ! $v =~ $re ]]; then
    echo "render.sh: invalid value \"$v\"" >&2
    exit 2
  fi
done

lines=''
for s in "${servers[@]}"; do
  lines+="    server $s max_fails=$max_fails fail_timeout=$fail_timeout;"$'\n'
done
template="$(dirname "$0")/holdfast.conf.template"
while IFS= read -r line || [[ -n $line ]]; do
  case "$line" in
    @@SERVERS@@) printf '%s' "$lines" ;;
    *@@LISTEN@@*) printf '%s\n' "${line//@@LISTEN@@/$listen}" ;;
    *) printf '%s\n' "$line" ;;
  esac
done <"$template"
