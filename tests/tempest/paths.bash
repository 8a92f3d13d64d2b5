# The Tempest scripts' paths, sourced from the repository's root: the shared conformance
# kit, the ferrostack binary (built unless FERROSTACK_BIN names one), Tempest's work
# directory and venv.
REPO=$(pwd)
SHARED="${FERRO_SHARED:-$REPO/../shared}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
BIN="${FERROSTACK_BIN:-$CARGO_TARGET_DIR/debug/ferrostack}"
[ -n "${FERROSTACK_BIN:-}" ] || cargo build -q -p ferrostack
export TEMPEST_WORK="${TEMPEST_WORK:-/var/tmp/ferrostack-tempest}"
venv="$TEMPEST_WORK/venv"
