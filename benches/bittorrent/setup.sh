#!/usr/bin/env bash
# Installs the BitTorrent baseline tools (Debian bookworm): python3-libtorrent,
# aria2 (aria2c) and opentracker. Idempotent: installs only what is missing,
# and runs `apt-get update` only if a package cannot be found in the lists.
set -euo pipefail

PKGS=(python3-libtorrent aria2 opentracker)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup.sh: already installed: ${PKGS[*]}"
else
  # Refresh lists if any missing package has no install candidate yet.
  need_update=0
  for p in "${missing[@]}"; do
    cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then need_update=1; fi
  done
  if [ "$need_update" -eq 1 ]; then
    $SUDO apt-get update -qq
  fi
  installable=()
  for p in "${missing[@]}"; do
    cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then
      installable+=("$p")
    elif [ "$p" = "opentracker" ]; then
      echo "setup.sh: WARNING: opentracker is not packaged here; bt_bench.py will fall" >&2
      echo "          back to direct peer connections (connect_peer) for --client libtorrent;
          --client aria2c needs the tracker and will not run." >&2
    else
      echo "setup.sh: ERROR: package $p not available" >&2
      exit 1
    fi
  done
  if [ "${#installable[@]}" -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${installable[@]}"
  fi
fi

# The Debian module lives in /usr/lib/python3/dist-packages, visible to the
# system interpreter (/usr/bin/python3), not necessarily to a pyenv python3.
/usr/bin/python3 -c 'import libtorrent as lt; print("libtorrent", lt.__version__)'
command -v aria2c >/dev/null && aria2c --version | head -1
if command -v opentracker >/dev/null 2>&1; then
  echo "opentracker: $(command -v opentracker)"
else
  echo "opentracker: not installed (direct-connect fallback)"
fi
