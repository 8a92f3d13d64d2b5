# The common start of the Tempest measurement scripts (compute.sh, network.sh, object.sh),
# sourced from the repository's root: paths.bash, a check for the Tempest venv
# tests/tempest/run.sh made, a work directory removed on exit with the server (`pid`)
# stopped, and free_port.
# shellcheck source=paths.bash
source tests/tempest/paths.bash
[ -x "$venv/bin/tempest" ] || { echo "no Tempest venv at $venv: run tests/tempest/run.sh once" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
