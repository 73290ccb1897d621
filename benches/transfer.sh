#!/usr/bin/env bash
# Release transfer: busker vs BitTorrent (libtorrent, aria2c) on 127.0.0.1. Run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benches/bittorrent/setup.sh
cargo bench --bench transfer "$@"
