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
  [[ -z ${SHIM_DIR:-} ]] || rm -rf "$SHIM_DIR"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# CMD | has [GREP-OPTION...] PATTERN: "CMD | grep -q PATTERN" that reads
# CMD's output to the end. grep -q exits at its first match; a CMD still
# writing then dies of SIGPIPE, and under pipefail the pipeline fails (141)
# although the output matched. Here grep -q decides and cat drains the
# rest, so the pipeline's status is what it is without the SIGPIPE: CMD's
# if CMD failed, else grep's.
has() {
  local rc=0
  grep -q "$@" || rc=$?
  cat >/dev/null
  return "$rc"
}

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
    local extra
    extra=$(cat)
    # A sanitizer build leak-checks keyd at exit, which its seccomp filter
    # forbids (a sandboxed sanitizer keyd skips the check): run without the
    # sandbox there, unless the test sets it itself.
    if [[ ${KEYD_SANITIZE:-OFF} == ON ]] && ! grep -q '^sandbox *=' <<< "$extra"; then
      echo "sandbox = no"
    fi
    # state_dir (SRTP counters, the audit checkpoint record) in the test's
    # directory, never the default /var/lib/keyd.
    if ! grep -q '^state_dir *=' <<< "$extra"; then
      echo "state_dir = $T/state"
    fi
    printf '%s\n' "$extra"
  } > "$T/keyd.conf"
  chmod 0600 "$T/keyd.conf"
}

start_keyd() {
  # KEYD_WRAPPER: a command to run keyd under (strace, valgrind), unquoted.
  # Empty the log first: the wait below must not read an earlier keyd's
  # "serving" line.
  : > "$T/keyd.log"
  ${KEYD_WRAPPER:-} "$KEYD" -c "$T/keyd.conf" "$@" >"$T/keyd.log" 2>&1 &
  KEYD_PID=$!
  # 30 s: keyd starts a token process and a socket-facing process, which
  # a loaded machine running sanitizer builds slows down.
  for _ in $(seq 1 300); do
    [[ -S $T/run/keyd.sock ]] && grep -q "serving" "$T/keyd.log" && return 0
    kill -0 "$KEYD_PID" 2>/dev/null || { cat "$T/keyd.log" >&2; fail "keyd exited at start-up"; }
    sleep 0.1
  done
  fail "keyd did not start within 30 s"
}

# keyd's processes: the supervisor is $KEYD_PID; its children are the
# socket-facing process and one token process per configured token.
serve_pid() { pgrep -P "$KEYD_PID" -x keyd-serve; }
token_pids() { pgrep -P "$KEYD_PID" -x keyd-token; }

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

# ---- helpers of the core tests (sign_verify, decrypt, policy, protocol,
# config_check, lifecycle, recovery) ----

# need_root: for tests that change uids (setpriv) or owners; skip (77)
# otherwise. CI runs the tests as root.
need_root() {
  if [[ $(id -u) -ne 0 ]]; then echo "SKIP: needs root"; exit 77; fi
}

# as_user UID GID[,SUPPLEMENTARY...] CMD...: CMD with those credentials
# and no other groups.
as_user() {
  local uid=$1 gids=$2 groups=--clear-groups; shift 2
  [[ $gids == *,* ]] && groups=--groups=${gids#*,}
  setpriv --reuid="$uid" --regid="${gids%%,*}" "$groups" -- "$@"
}

# reload_client_setup: keyd.py, libkeyd and tests/integration/reload_client.py
# copied into $T/py, readable by the other users the tests run them as
# (the checkout may sit in a directory only root can enter, as /root/keyd
# in the fresh roots); sets PY, PYTHONPATH, KEYD_LIBRARY and CLIENT, and
# py, which runs $PY with the sanitizer runtime preloaded where one is.
reload_client_setup() {
  PY=/usr/bin/python3
  "$PY" -c 'import cryptography' 2>/dev/null ||
    fail "python3-cryptography is missing (scripts/deps.sh)"
  mkdir -p "$T/py"
  install -m 0644 "$KEYD_SOURCE_DIR/client/python/keyd.py" \
    "$KEYD_SOURCE_DIR/tests/integration/reload_client.py" "$T/py/"
  install -m 0644 "$KEYD_BUILD_DIR/client/libkeyd.so.0" "$T/py/libkeyd.so.0"
  chmod 0755 "$T/py"
  export PYTHONPATH=$T/py KEYD_LIBRARY=$T/py/libkeyd.so.0
  CLIENT=$T/py/reload_client.py
}
py() {
  if [[ -n ${KEYD_P11_PRELOAD:-} ]]; then
    LD_PRELOAD=$KEYD_P11_PRELOAD ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 "$PY" "$@"
  else
    "$PY" "$@"
  fi
}

# expect_error LINE CMD...: CMD must exit 1 having printed exactly LINE
# on stderr (one line) and nothing on stdout. expect_error_rc RC LINE
# CMD...: the same with exit status RC (keydctl's usage errors: 2).
expect_error() { expect_error_rc 1 "$@"; }
expect_error_rc() {
  local want_rc=$1 want=$2 rc=0; shift 2
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  [[ $rc -eq $want_rc ]] || { cat "$T/err" >&2; fail "'$*' exited $rc, not $want_rc"; }
  [[ ! -s $T/out ]] || fail "'$*' wrote to stdout: $(head -c 200 "$T/out")"
  [[ $(cat "$T/err") == "$want" ]] || fail "'$*' said:
  $(cat "$T/err")
expected:
  $want"
}

# keyd_rss_kb: the running keyd's resident set size in kB.
keyd_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$KEYD_PID/status"; }

# wait_for FILE PATTERN [SECONDS]: until FILE has a line matching PATTERN.
wait_for() {
  local file=$1 pat=$2 i n=$(( ${3:-10} * 20 ))
  for ((i = 0; i < n; i++)); do
    grep -q -- "$pat" "$file" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "$file has no line matching '$pat' after ${3:-10} s"
}

# json_field LINE NAME: the value of a top-level field of one audit line
# as json-c writes it (no spaces; quotes inside strings escaped): a number,
# or a string without its quotes (escapes kept). Nothing if absent. No jq:
# a fresh Debian machine need not have it.
json_field() {
  local num="[{,]\"$2\":(-?[0-9]+)[,}]"
  local str="[{,]\"$2\":\"(([^\"\\\\]|\\\\.)*)\""
  if [[ $1 =~ $num ]]; then printf '%s\n' "${BASH_REMATCH[1]}"
  elif [[ $1 =~ $str ]]; then printf '%s\n' "${BASH_REMATCH[1]}"
  fi
}

# sha_of ALG: the openssl digest name a keydctl sign algorithm hashes with.
sha_of() { case $1 in *sha256) echo sha256 ;; *sha384) echo sha384 ;; *sha512) echo sha512 ;; esac; }

# verify_sig ALG PUB.pem MSG SIG: openssl's verdict on a keydctl signature;
# returns openssl's status.
verify_sig() {
  local alg=$1 pub=$2 msg=$3 sig=$4
  case $alg in
    ed25519)
      openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$msg" -sigfile "$sig" ;;
    rsa-pss-*)
      openssl dgst "-$(sha_of "$alg")" -verify "$pub" -sigopt rsa_padding_mode:pss \
        -sigopt rsa_pss_saltlen:digest -signature "$sig" "$msg" ;;
    *)
      openssl dgst "-$(sha_of "$alg")" -verify "$pub" -signature "$sig" "$msg" ;;
  esac
}

# offline_setup: for keyd-backup drill and rekey, which refuse to run
# where a process named keyd runs. offline CMD... runs CMD where no keyd
# is seen: in a PID namespace with its own /proc if this machine allows
# one (root); elsewhere, where another test's keyd may run, as it is, and
# ONLINE then holds --allow-online for the command line.
offline_setup() {
  if unshare --pid --fork --mount-proc true 2>/dev/null; then
    offline() { unshare --pid --fork --mount-proc "$@"; }
    ONLINE=()
  else
    offline() { "$@"; }
    ONLINE=(--allow-online)
    echo "note: no PID namespace here; keyd-backup runs with --allow-online"
  fi
}

# ec_signs_for ID PUB.pem: the EC key ID on $TOKEN signs (pkcs11-tool,
# ECDSA over SHA-256) a message that PUB verifies, and not another one: a
# restored key is the original's.
ec_signs_for() {
  echo "message $RANDOM" > "$T/msg"
  openssl dgst -sha256 -binary "$T/msg" > "$T/msg.sha256"
  p11 --sign --id "$1" -m ECDSA --signature-format openssl -i "$T/msg.sha256" \
    -o "$T/ec.sig" >/dev/null 2>&1 || fail "pkcs11-tool cannot sign with $TOKEN's EC key $1"
  openssl dgst -sha256 -verify "$2" -signature "$T/ec.sig" "$T/msg" >/dev/null ||
    fail "$TOKEN's signature does not verify with $2"
  echo "another message" > "$T/msg2"
  if openssl dgst -sha256 -verify "$2" -signature "$T/ec.sig" "$T/msg2" >/dev/null 2>&1; then
    fail "openssl verified a signature over another message"
  fi
}

# use_shim: makes the config written by write_config load SoftHSM2 through
# the fault-injecting module keyd-p11shim.so (tests/shim/p11shim.c), with
# its control file $P11SHIM_CONTROL (empty: no faults) and its log
# $P11SHIM_LOG. Returns 1, saying why, when keyd would refuse the module:
# it must be root's and not group/world-writable, and so must every
# directory above it.
SHIM=$KEYD_BUILD_DIR/tests/shim/keyd-p11shim.so
use_shim() {
  local d
  [[ -f $SHIM ]] || { echo "$SHIM is not built (target keyd-p11shim)"; return 1; }
  # A build tree under /tmp (or any writable place) fails keyd's module
  # checks: as root, put a copy in a private directory under /run.
  if [[ $(id -u) -eq 0 && -d /run && $(stat -c %u /run) == 0 ]] &&
    SHIM_DIR=$(mktemp -d /run/keyd-test-shim.XXXXXX 2>/dev/null); then
    chmod 0755 "$SHIM_DIR"
    install -m 0644 "$SHIM" "$SHIM_DIR/keyd-p11shim.so"
    SHIM=$SHIM_DIR/keyd-p11shim.so
  fi
  d=$(realpath "$SHIM")
  while :; do
    if [[ $(stat -c %u "$d") != 0 || $(( 0$(stat -c %a "$d") & 022 )) != 0 ]]; then
      echo "$d is not root's or is group/world-writable: keyd would refuse $SHIM"
      return 1
    fi
    [[ $d == / ]] && break
    d=$(dirname "$d")
  done
  export P11SHIM_MODULE=$SOFTHSM_MODULE
  export P11SHIM_CONTROL=$T/shim.ctl
  export P11SHIM_LOG=$T/shim.log
  : > "$P11SHIM_CONTROL"
  : > "$P11SHIM_LOG"
  sed -i "s|^module = .*|module = $SHIM|" "$T/keyd.conf"
  grep -q "^module = $SHIM\$" "$T/keyd.conf" || fail "use_shim: no module line in keyd.conf"
}

# shim_ctl RULE...: rewrites the shim's control file, one rule a line (a
# new version of the file: fresh counters even for the same rule).
shim_ctl() {
  printf '%s\n' "$@" > "$P11SHIM_CONTROL.new"
  mv "$P11SHIM_CONTROL.new" "$P11SHIM_CONTROL"
}

# Sanitizer builds: leaks inside outside libraries (SoftHSM2's Ed25519
# code) are not keyd's; see lsan.supp. The suppression needs whole stacks
# (libcrypto has no frame pointers), hence the slow unwinder. Harmless in
# other builds.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$KEYD_SOURCE_DIR/tests/integration/lsan.supp:print_suppressions=0}
export ASAN_OPTIONS=${ASAN_OPTIONS:-fast_unwind_on_malloc=0}
