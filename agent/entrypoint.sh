#!/bin/sh
# The container's start. Fly mounts a volume owned by root, and the agent runs as the app user
# (uid 10001): as root, this gives the report outbox's directory (on the volume: fly.toml) to the
# app user, then becomes that user. `exec` at each step, so node ends as PID 1 and gets Fly's
# SIGTERM itself (a shell left in between would not pass it on, and calls would not drain).
# A directory it cannot make or give is left to the worker, which says so and runs without the
# outbox: the call path never waits on this step.
set -u
APP_UID=10001
if [ "$(id -u)" = 0 ]; then
  case "${REPORT_OUTBOX_DIR:-}" in
    /*)
      { mkdir -p "$REPORT_OUTBOX_DIR" && chown "$APP_UID:$APP_UID" "$REPORT_OUTBOX_DIR"; } ||
        echo "entrypoint: could not give $REPORT_OUTBOX_DIR to uid $APP_UID" >&2
      ;;
  esac
  exec setpriv --reuid="$APP_UID" --regid="$APP_UID" --init-groups --inh-caps=-all -- "$@"
fi
exec "$@"
