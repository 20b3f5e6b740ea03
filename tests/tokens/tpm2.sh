# tpm2.sh: a TPM 2.0 token for keyd's tests, made privately under $T.
# Sourced after tests/integration/lib.sh. A software TPM (swtpm, its state
# in $T/tpm2/state) on two free TCP ports of 127.0.0.1, a private D-Bus
# session bus (a socket in $T), tpm2-abrmd as the resource manager on that
# bus (tpm2_ptool addtoken against swtpm alone runs out of object
# contexts, 0x902), and tpm2-pkcs11 with its store in $T/tpm2/store. No
# system service, file or bus is used or changed, so tests using it run in
# parallel. Every process started here dies with the test: stopped at
# exit, and killed by the kernel (parent-death signal) if the test is
# killed.
#
#   tpm2_need            exit 77 unless the packages are there
#   tpm2_start           swtpm, the bus, tpm2-abrmd
#   tpm2_make_token L    token L (user PIN $PIN, SO PIN $SO_PIN) with an
#                        ECDSA P-256 key (label p256) and an RSA-2048 key
#                        (label rsa); sets TOKEN, and P256_ID and RSA_ID
#                        (CKA_ID in hex, as pkcs11-tool takes it)
#   tpm2_abrmd_restart   stop tpm2-abrmd and start it again (device loss)
#   tpm2_stop            everything, in reverse order (also at exit)
#
# lib.sh's helpers that name the module (write_config, p11, export_pub)
# take it from SOFTHSM_MODULE: tpm2_start points it at tpm2-pkcs11.

source "$KEYD_SOURCE_DIR/tests/tokens/common.sh"

TPM2_PACKAGES="swtpm tpm2-abrmd libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools tpm2-tools dbus-daemon dbus-bin python3 opensc"
TPM2_MODULE=${TPM2_MODULE:-}
TPM2_DIR=$T/tpm2
TPM2_SWTPM_PID=
TPM2_DBUS_PID=
TPM2_ABRMD_PID=
TPM2_PORT=

tpm2_need() {
  local m
  if [[ -z $TPM2_MODULE ]]; then
    for m in /usr/lib/*/pkcs11/libtpm2_pkcs11.so /usr/lib/*/libtpm2_pkcs11.so.1; do
      [[ -e $m ]] && { TPM2_MODULE=$(realpath "$m"); break; }
    done
  fi
  tok_need_cmds "$TPM2_PACKAGES" -- swtpm tpm2-abrmd tpm2_ptool tpm2_createprimary \
    dbus-daemon dbus-send python3 pkcs11-tool "${TPM2_MODULE:-libtpm2_pkcs11.so}"
  # The TCTIs: tpm2-abrmd reaches swtpm through libtss2-tcti-swtpm, the
  # module reaches tpm2-abrmd through libtss2-tcti-tabrmd.
  for m in tabrmd swtpm; do
    compgen -G "/usr/lib/*/libtss2-tcti-$m.so.0" > /dev/null ||
      { echo "SKIP: no libtss2-tcti-$m.so.0 (Debian packages: $TPM2_PACKAGES)"; exit 77; }
  done
}

# tpm2__listening PID PORT: whether process PID holds a socket listening
# on 127.0.0.1:PORT (so that a port another test's swtpm took is never
# taken for ours).
tpm2__listening() {
  local pid=$1 port inodes
  printf -v port '%04X' "$2"
  inodes=$(find "/proc/$pid/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null |
    sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' ')
  [[ -n $inodes ]] || return 1
  awk -v p="0100007F:$port" -v ino=" $inodes" '
    $2 == p && $4 == "0A" && index(ino, " " $10 " ") { found = 1 }
    END { exit !found }' /proc/net/tcp
}

# tpm2__start_swtpm: swtpm on a free port P (commands) and P+1 (control,
# which the swtpm TCTI takes to be the next port). A port is free when
# this shell could bind it a moment ago; another test may take it in
# between, and then swtpm fails to bind and exits: try another pair.
tpm2__start_swtpm() {
  local try i
  mkdir -p "$TPM2_DIR/state"
  for ((try = 0; try < 10; try++)); do
    TPM2_PORT=$(python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    if p >= 65535: continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        continue
    print(p); break')
    setpriv --pdeathsig KILL -- swtpm socket --tpm2 --tpmstate dir="$TPM2_DIR/state" \
      --server type=tcp,port="$TPM2_PORT",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((TPM2_PORT + 1)),bindaddr=127.0.0.1 \
      --flags not-need-init,startup-clear >> "$TPM2_DIR/swtpm.log" 2>&1 &
    TPM2_SWTPM_PID=$!
    for ((i = 0; i < 100; i++)); do
      kill -0 "$TPM2_SWTPM_PID" 2>/dev/null || break
      if tpm2__listening "$TPM2_SWTPM_PID" "$TPM2_PORT" &&
        tpm2__listening "$TPM2_SWTPM_PID" $((TPM2_PORT + 1)); then
        return 0
      fi
      sleep 0.05
    done
    tok_stop_pid "$TPM2_SWTPM_PID"
    TPM2_SWTPM_PID=
  done
  fail "swtpm did not start: $(tail -n 5 "$TPM2_DIR/swtpm.log")"
}

tpm2__start_dbus() {
  local i
  setpriv --pdeathsig KILL -- dbus-daemon --session --address="unix:path=$TPM2_DIR/bus" \
    --nofork --nopidfile --print-address=3 3> "$TPM2_DIR/bus.address" \
    2>> "$TPM2_DIR/dbus.log" &
  TPM2_DBUS_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s $TPM2_DIR/bus.address ]] && break
    kill -0 "$TPM2_DBUS_PID" 2>/dev/null || fail "dbus-daemon exited: $(cat "$TPM2_DIR/dbus.log")"
    sleep 0.05
  done
  [[ -s $TPM2_DIR/bus.address ]] || fail "dbus-daemon did not start"
  DBUS_SESSION_BUS_ADDRESS=$(head -n 1 "$TPM2_DIR/bus.address")
  export DBUS_SESSION_BUS_ADDRESS
}

# tpm2_abrmd_start: tpm2-abrmd on the private bus, until it owns its name.
tpm2_abrmd_start() {
  local i
  setpriv --pdeathsig KILL -- tpm2-abrmd --session --allow-root --flush-all \
    --tcti="swtpm:host=127.0.0.1,port=$TPM2_PORT" >> "$TPM2_DIR/abrmd.log" 2>&1 &
  TPM2_ABRMD_PID=$!
  for ((i = 0; i < 200; i++)); do
    kill -0 "$TPM2_ABRMD_PID" 2>/dev/null ||
      fail "tpm2-abrmd exited: $(tail -n 5 "$TPM2_DIR/abrmd.log")"
    if dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
        org.freedesktop.DBus.NameHasOwner string:com.intel.tss2.Tabrmd 2>/dev/null |
        has 'boolean true'; then
      return 0
    fi
    sleep 0.05
  done
  fail "tpm2-abrmd did not take its bus name in 10 s: $(tail -n 5 "$TPM2_DIR/abrmd.log")"
}

tpm2_abrmd_stop() {
  tok_stop_pid "$TPM2_ABRMD_PID"
  TPM2_ABRMD_PID=
}

# tpm2_abrmd_restart: what a module sees when its TPM's resource manager
# goes away and comes back (the device-loss test).
tpm2_abrmd_restart() {
  tpm2_abrmd_stop
  tpm2_abrmd_start
}

tpm2_start() {
  [[ -n $TPM2_MODULE ]] || tpm2_need
  mkdir -p "$TPM2_DIR/store"
  tok_on_exit tpm2_stop
  tpm2__start_swtpm
  tpm2__start_dbus
  tpm2_abrmd_start
  # What the module (in keyd, pkcs11-tool) and tpm2_ptool read.
  export TPM2_PKCS11_TCTI=tabrmd:bus_type=session
  export TPM2TOOLS_TCTI=tabrmd:bus_type=session
  export TPM2_PKCS11_STORE=$TPM2_DIR/store
  SOFTHSM_MODULE=$TPM2_MODULE
  # Not root (this test needs no root): keydctl trusts a keyd run by this
  # user.
  [[ $(id -u) -eq 0 ]] || export KEYD_DAEMON_USER=$(id -un)
}

# tpm2_ptool stores --id's text as CKA_ID: --id=01 is 0x3031.
tpm2__hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

tpm2_make_token() {
  TOKEN=$1
  P256_ID=$(tpm2__hex 01)
  RSA_ID=$(tpm2__hex 02)
  tpm2_ptool init --path="$TPM2_PKCS11_STORE" > "$TPM2_DIR/ptool.log" 2>&1 ||
    fail "tpm2_ptool init: $(cat "$TPM2_DIR/ptool.log")"
  tpm2_ptool addtoken --path="$TPM2_PKCS11_STORE" --pid=1 --label="$TOKEN" \
    --sopin="$SO_PIN" --userpin="$PIN" > "$TPM2_DIR/ptool.log" 2>&1 ||
    fail "tpm2_ptool addtoken: $(cat "$TPM2_DIR/ptool.log")"
  tpm2_ptool addkey --path="$TPM2_PKCS11_STORE" --label="$TOKEN" --userpin="$PIN" \
    --algorithm=ecc256 --key-label=p256 --id=01 > "$TPM2_DIR/ptool.log" 2>&1 ||
    fail "tpm2_ptool addkey ecc256: $(cat "$TPM2_DIR/ptool.log")"
  tpm2_ptool addkey --path="$TPM2_PKCS11_STORE" --label="$TOKEN" --userpin="$PIN" \
    --algorithm=rsa2048 --key-label=rsa --id=02 > "$TPM2_DIR/ptool.log" 2>&1 ||
    fail "tpm2_ptool addkey rsa2048: $(cat "$TPM2_DIR/ptool.log")"
}

# tpm2_add_aes LABEL ID: an AES-256 key (the --check-config test of
# CKM_AES_GCM).
tpm2_add_aes() {
  tpm2_ptool addkey --path="$TPM2_PKCS11_STORE" --label="$TOKEN" --userpin="$PIN" \
    --algorithm=aes256 --key-label="$1" --id="$2" > "$TPM2_DIR/ptool.log" 2>&1 ||
    fail "tpm2_ptool addkey aes256: $(cat "$TPM2_DIR/ptool.log")"
}

tpm2_stop() {
  tpm2_abrmd_stop
  tok_stop_pid "$TPM2_DBUS_PID"
  TPM2_DBUS_PID=
  tok_stop_pid "$TPM2_SWTPM_PID"
  TPM2_SWTPM_PID=
}
