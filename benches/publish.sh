#!/usr/bin/env bash
# Publish throughput vs b3sum on the same synthesised album. Run by hand, not in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v b3sum >/dev/null || need+=(b3sum)
command -v flac >/dev/null || need+=(flac)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" || true
fi
if ! command -v b3sum >/dev/null; then
  cargo install --locked b3sum
fi
b3sum --version
cargo bench --bench publish "$@"
