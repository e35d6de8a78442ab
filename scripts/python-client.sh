#!/usr/bin/env bash
# Makes the venv of LiveKit's Python SDK that test/e2e/python-client.test.ts joins calls with, once
# per version of test/clients/python/requirements.txt (keyed by its hash, as
# test/support/python-client.ts finds it), outside the clone. Prints its python. Exits 3 when this
# machine's Python cannot make a venv (Debian: apt-get install python3-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
req=test/clients/python/requirements.txt
key="$(sha256sum "$req" | cut -c1-12)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/livekit-voice-calls/python-client/$key"
if ! "$venv/bin/python" -c 'import livekit.rtc, numpy' 2>/dev/null; then
  # Debian's python3 has the venv module without ensurepip: only python3-venv makes a venv work.
  python3 -c 'import venv, ensurepip' 2>/dev/null || {
    echo "python3 with venv and ensurepip is needed (Debian: apt-get install python3-venv)" >&2
    exit 3
  }
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
fi
echo "$venv/bin/python"
