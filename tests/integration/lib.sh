# lib.sh: shared set-up for keyd's integration and end-to-end tests.
# Each test gets its own temporary directory with a SoftHSM2 token made
# there, keys made by pkcs11-tool, a PIN file, a config, and a keyd.
# Sourced by the tests; it sets -euo pipefail and cleans up on exit.
set -euo pipefail

: "${KEYD_BUILD_DIR:?run through ctest}"
: "${KEYD_SOURCE_DIR:?run through ctest}"
KEYD=$KEYD_BUILD_DIR/keyd/keyd
KEYDCTL=$KEYD_BUILD_DIR/client/keydctl
KD_RAW=$KEYD_BUILD_DIR/tests/kd_raw
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
PIN=1234
SO_PIN=5678

T=$(mktemp -d /tmp/keyd-test.XXXXXX)
chmod 755 "$T"
KEYD_PID=
export SOFTHSM2_CONF=$T/softhsm2.conf
export KEYD_SOCKET=$T/run/keyd.sock

cleanup() {
  local rc=$?
  if [[ -n $KEYD_PID ]] && kill -0 "$KEYD_PID" 2>/dev/null; then
    kill -TERM "$KEYD_PID" 2>/dev/null || true
    wait "$KEYD_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f $T/keyd.log ]]; then
    echo "--- keyd.log" >&2; tail -n 30 "$T/keyd.log" >&2
  fi
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# make_token LABEL: a fresh SoftHSM2 token in $T/tokens.
make_token() {
  mkdir -p "$T/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$T/tokens" > "$SOFTHSM2_CONF"
  softhsm2-util --init-token --free --label "$1" --pin $PIN --so-pin $SO_PIN >/dev/null
}

p11() { pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --login --pin $PIN "$@"; }

# keygen TYPE LABEL ID [usage flags]: TYPE as pkcs11-tool takes it.
keygen() {
  local type=$1 label=$2 id=$3; shift 3
  case $type in
    AES:*) p11 --keygen --key-type "$type" --label "$label" --id "$id" --sensitive "$@" >/dev/null ;;
    *) p11 --keypairgen --key-type "$type" --label "$label" --id "$id" --sensitive "$@" >/dev/null ;;
  esac
}

# export_pub ID OUT.pem: the public key as pkcs11-tool reads it.
export_pub() {
  pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --read-object \
    --type pubkey --id "$1" -o "$T/pub.der" >/dev/null 2>&1
  openssl pkey -pubin -inform DER -in "$T/pub.der" -out "$2"
}

# export_pub_gnutls LABEL OUT.pem: through GnuTLS's p11tool (P-384, which
# pkcs11-tool 0.23 cannot export).
export_pub_gnutls() {
  GNUTLS_PIN=$PIN p11tool --provider "$SOFTHSM_MODULE" --export-pubkey \
    "pkcs11:token=$TOKEN;object=$1;type=public" --outfile "$2" >/dev/null 2>&1
}

write_pin() {
  printf '%s\n' "$PIN" > "$T/pin"
  chmod 0400 "$T/pin"
}

# write_config: [keyd] with the given extra lines on stdin appended.
write_config() {
  {
    cat <<CONF
[keyd]
socket = $T/run/keyd.sock
module = $SOFTHSM_MODULE
token = pkcs11:token=$TOKEN
pin_file = $T/pin
audit_log = $T/audit.jsonl
CONF
    cat
  } > "$T/keyd.conf"
  chmod 0600 "$T/keyd.conf"
}

start_keyd() {
  "$KEYD" -c "$T/keyd.conf" "$@" >"$T/keyd.log" 2>&1 &
  KEYD_PID=$!
  for _ in $(seq 1 100); do
    [[ -S $T/run/keyd.sock ]] && grep -q "serving" "$T/keyd.log" && return 0
    kill -0 "$KEYD_PID" 2>/dev/null || { cat "$T/keyd.log" >&2; fail "keyd exited at start-up"; }
    sleep 0.1
  done
  fail "keyd did not start within 10 s"
}

stop_keyd() {
  kill -TERM "$KEYD_PID"
  wait "$KEYD_PID" || fail "keyd exited with status $? on SIGTERM"
  KEYD_PID=
}

# expect_fail PATTERN CMD...: CMD must fail and say PATTERN on stderr.
expect_fail() {
  local pat=$1; shift
  if "$@" >"$T/out" 2>"$T/err"; then fail "succeeded: $*"; fi
  grep -q -- "$pat" "$T/err" || { cat "$T/err" >&2; fail "'$*' did not say '$pat'"; }
}
