#!/usr/bin/env bash
# Makes the venv of LiveKit's Python SDK that test/e2e/python-client.test.ts joins calls with, once
# per pinned version (test/clients/python/requirements.txt), outside the clone. Prints its python.
set -euo pipefail
cd "$(dirname "$0")/.."
req=test/clients/python/requirements.txt
pin="$(sed -n 's/^livekit==\(.*\)$/\1/p' "$req")"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/livekit-voice-calls/python-client/livekit-$pin"
if ! "$venv/bin/python" -c 'import livekit.rtc' 2>/dev/null; then
  python3 -m venv --help >/dev/null 2>&1 || {
    echo "python3 with venv is needed (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
fi
echo "$venv/bin/python"
