#!/usr/bin/env bash
# Render deploy/blue-green/holdfast-blue-green.conf.template to stdout.
#
#   deploy/blue-green/render.sh --live blue|green [--canary PERCENT] [--listen ADDR]
#       [--max-fails N] [--fail-timeout T] --blue HOST:PORT... --green HOST:PORT...
#
#   --live COLOR       the color that gets new connections (default blue)
#   --canary PERCENT   send this share of new connections to the other color (0-99, default 0;
#                      decimals allowed: 0.5)
#   --listen ADDR      what nginx listens on: 80, 0.0.0.0:80, 127.0.0.1:8080 (default 80)
#   --max-fails N      failed attempts before a node is skipped (default 1)
#   --fail-timeout T   how long it is skipped, nginx time syntax (default 10s)
#   --blue / --green   a node of that color (repeat); each color needs at least one
#
# Example, 5% canary on green:
#   deploy/blue-green/render.sh --live blue --canary 5 --blue 10.0.0.11:8080 --green 10.0.0.21:8080 \
#     > /etc/nginx/conf.d/holdfast.conf && nginx -t && nginx -s reload
set -euo pipefail

live=blue
canary=0
listen=80
max_fails=1
fail_timeout=10s
blue=()
green=()
while (($# > 0)); do
  case "$1" in
    --live) live=${2:?--live needs blue or green}; shift 2 ;;
    --canary) canary=${2:?--canary needs a percentage}; shift 2 ;;
    --listen) listen=${2:?--listen needs a value}; shift 2 ;;
    --max-fails) max_fails=${2:?--max-fails needs a value}; shift 2 ;;
    --fail-timeout) fail_timeout=${2:?--fail-timeout needs a value}; shift 2 ;;
    --blue) blue+=("${2:?--blue needs HOST:PORT}"); shift 2 ;;
    --green) green+=("${2:?--green needs HOST:PORT}"); shift 2 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "render.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$live" in
  blue) other=green ;;
  green) other=blue ;;
  *) echo "render.sh: --live must be blue or green, got \"$live\"" >&2; exit 2 ;;
esac
# nginx's split_clients takes percentages with up to two decimals; 100 would leave the live color nothing.
if [[ ! $canary =~ ^[0-9]{1,2}(\.[0-9]{1,2})?$ ]]; then
  echo "render.sh: --canary must be a percentage from 0 to 99.99, got \"$canary\"" >&2
  exit 2
fi
if ((${#blue[@]} == 0 || ${#green[@]} == 0)); then
  echo "render.sh: name at least one --blue and one --green node (HOST:PORT)" >&2
  exit 2
fi
# Values end up in nginx syntax: refuse anything that could close a directive or open a block.
re='^[][A-Za-z0-9.:_-]+$'
for v in "$listen" "$max_fails" "$fail_timeout" "${blue[@]}" "${green[@]}"; do
  if [[ ! $v =~ $re ]]; then
    echo "render.sh: invalid value \"$v\"" >&2
    exit 2
  fi
done

servers() {
  local s
  for s in "$@"; do printf '    server %s max_fails=%s fail_timeout=%s;\n' "$s" "$max_fails" "$fail_timeout"; done
}
split="    * $live;"
if [[ $canary =~ [1-9] ]]; then
  split="    $canary% $other;"$'\n'"$split"
fi

template="$(dirname "$0")/holdfast-blue-green.conf.template"
while IFS= read -r line || [[ -n $line ]]; do
  case "$line" in
    @@BLUE@@) servers "${blue[@]}" ;;
    @@GREEN@@) servers "${green[@]}" ;;
    @@SPLIT@@) printf '%s\n' "$split" ;;
    *@@LISTEN@@*) printf '%s\n' "${line//@@LISTEN@@/$listen}" ;;
    *) printf '%s\n' "$line" ;;
  esac
done <"$template"
