# opencryptoki.sh: an opencryptoki soft token for keyd's tests, confined
# to $T. Sourced after tests/integration/lib.sh.
#
# opencryptoki has no setting for where it lives: the paths are compiled
# in (3.8.1 and 3.23 alike): its configuration /etc/opencryptoki/
# opencryptoki.conf, the token data under /var/lib/opencryptoki, lock files
# under /var/lock/opencryptoki, pkcsslotd's socket in /run (3.8.1:
# /run/pkcsslotd.socket; 3.23: /run/opencryptoki/), a System V shared
# memory segment keyed by ftok(/usr/sbin/pkcsslotd) and POSIX shared memory
# in /dev/shm. Only PKCS_APP_STORE (the token data) can be moved, not the
# rest. So the token runs in a private mount and IPC namespace (unshare,
# as root), where $T/ock/etc, $T/ock/lib and $T/ock/run are mounted over
# /etc/opencryptoki, /var/lib/opencryptoki and /run (with /run/lock), and
# a fresh tmpfs over /dev/shm; pkcsslotd runs in a PID namespace of its
# own. Nothing of the system's opencryptoki is read or changed, a
# pkcsslotd the system may run is not seen, and tests using it run in
# parallel. Every command that uses the token (pkcsconf, pkcs11-tool,
# keyd) runs in those namespaces through $TOK_RUN (nsenter); keyd's
# socket, config and logs stay in $T, which both sides see.
#
#   ock_need            exit 77 unless root, the packages and namespaces
#   ock_start           the namespaces and pkcsslotd; sets TOK_RUN,
#                       KEYD_WRAPPER (start_keyd runs keyd in them) and
#                       SOFTHSM_MODULE (lib.sh's write_config takes the
#                       module from it)
#   ock_make_token L    token L in the soft token's slot: SO PIN $SO_PIN,
#                       user PIN $PIN, an RSA-2048 key (label rsa, RSA_ID
#                       02) and, where the token makes EC keys, a P-256 key
#                       (label p256, P256_ID 01; else P256_ID is empty)
#   ock_stop            pkcsslotd and the namespaces (also at exit)

source "$KEYD_SOURCE_DIR/tests/tokens/common.sh"

OCK_PACKAGES="opencryptoki opensc util-linux mount"
OCK_MODULE=${OCK_MODULE:-}
OCK_DIR=$T/ock
OCK_SLOT=3
OCK_NS_PID=
OCK_PROPAGATION=private
# opencryptoki's SO PIN before pkcsconf -P changes it.
OCK_DEFAULT_SO_PIN=87654321

ock_need() {
  local m
  need_root
  if [[ -z $OCK_MODULE ]]; then
    for m in /usr/lib/*/pkcs11/libopencryptoki.so /usr/lib/*/opencryptoki/libopencryptoki.so; do
      [[ -e $m ]] && { OCK_MODULE=$(realpath "$m"); break; }
    done
  fi
  tok_need_cmds "$OCK_PACKAGES" -- pkcsslotd pkcsconf pkcs11-tool unshare nsenter setpriv \
    mount "${OCK_MODULE:-libopencryptoki.so}"
  compgen -G "/usr/lib/*/opencryptoki/stdll/libpkcs11_sw.so*" > /dev/null ||
    { echo "SKIP: no opencryptoki soft token libpkcs11_sw.so (Debian package: opencryptoki)"; exit 77; }
  # In a chroot (the fresh Debian roots of tests/fresh), / is no mount
  # point and unshare cannot make the new namespace's mounts private:
  # OCK_INNER then checks that its mounts do not reach this namespace.
  if unshare --mount --ipc --propagation private true 2>/dev/null; then
    OCK_PROPAGATION=private
  elif unshare --mount --ipc --propagation unchanged true 2>/dev/null; then
    OCK_PROPAGATION=unchanged
  else
    echo "SKIP: cannot make a mount namespace here (unshare --mount fails)"
    exit 77
  fi
}

# ock__layout: $OCK_DIR/etc, lib and run, as the installed package lays out
# /etc/opencryptoki, /var/lib/opencryptoki (the soft token's directories)
# and its directories in /run (those of its tmpfiles.d file: 3.23 adds
# /run/opencryptoki for its pkcsslotd user), with a configuration that
# has the soft token alone. Few processes: each costs tens of ms on a busy
# CI machine.
ock__layout() {
  local type path mode user group rest d f
  install -d -m 0755 "$OCK_DIR" "$OCK_DIR/run"
  install -d -m 1777 "$OCK_DIR/run/lock"
  cp -a /etc/opencryptoki "$OCK_DIR/etc"
  install -d -m 0770 -o root -g pkcs11 "$OCK_DIR/lib" "$OCK_DIR/lib/swtok" \
    "$OCK_DIR/lib/swtok/TOK_OBJ" "$OCK_DIR/run/lock/opencryptoki" \
    "$OCK_DIR/run/lock/opencryptoki/swtok"
  for f in /usr/lib/tmpfiles.d/opencryptoki.conf /etc/tmpfiles.d/opencryptoki.conf; do
    [[ -f $f ]] || continue
    while read -r type path mode user group rest; do
      [[ $type == d || $type == D ]] || continue
      case $path in
        /var/lock/*) d=$OCK_DIR/run/lock/${path#/var/lock/} ;;
        /run/lock/*) d=$OCK_DIR/run/lock/${path#/run/lock/} ;;
        /var/run/*) d=$OCK_DIR/run/${path#/var/run/} ;;
        /run/*) d=$OCK_DIR/run/${path#/run/} ;;
        /var/lib/opencryptoki/*) d=$OCK_DIR/lib/${path#/var/lib/opencryptoki/} ;;
        *) continue ;;
      esac
      [[ $user == - ]] && user=root
      [[ $group == - ]] && group=root
      install -d -m "$mode" -o "$user" -g "$group" "$d" ||
        fail "cannot make $d as $f has $path ($mode $user $group)"
    done < "$f"
  done
  # One slot, the soft token. The package's configuration also names the
  # TPM, ICA, CCA and EP11 tokens, which need hardware this machine lacks.
  # Written into the copy, which keeps the file's owner and mode.
  {
    grep -m1 '^version' /etc/opencryptoki/opencryptoki.conf || true
    printf 'slot %d\n{\nstdll = libpkcs11_sw.so\n}\n' "$OCK_SLOT"
  } > "$OCK_DIR/etc/opencryptoki.conf"
}

# The namespaces' first process: the mounts, then pkcsslotd (it becomes a
# daemon: its parent returns), then it waits as the PID namespace's init.
# With propagation unchanged (a chroot), a mount made here would also
# appear in the test's namespace, and in the system's, if the mount that
# holds them is shared: a probe mount over $O/probe first, checked
# through the test shell's root, and no other mount if it shows there.
# shellcheck disable=SC2016
OCK_INNER='set -e
O=$1 testpid=$2 propagation=$3
if [[ $propagation != private ]]; then
  mount -t tmpfs -o size=1m ockprobe "$O/probe"
  if [[ ! -e /proc/$testpid/root$O/probe/under ]]; then
    umount "$O/probe"
    echo "mounts made in a new namespace here propagate to the system: not confined" > "$O/skip"
    exit 1
  fi
fi
mount --bind "$O/etc" /etc/opencryptoki
mount --bind "$O/lib" /var/lib/opencryptoki
mount --bind "$O/run" /run
mount -t tmpfs -o mode=1777,size=64m tmpfs /dev/shm
pkcsslotd > "$O/pkcsslotd.log" 2>&1
exec sleep infinity'

ock_start() {
  local i
  [[ -n $OCK_MODULE ]] || ock_need
  ock__layout
  tok_on_exit ock_stop
  # --kill-child: when unshare dies (also by the parent-death signal if
  # the test is killed), the namespace's init is killed, and with it every
  # process in the PID namespace.
  mkdir -p "$OCK_DIR/probe"
  : > "$OCK_DIR/probe/under"
  setpriv --pdeathsig KILL -- unshare --mount --ipc --pid --fork --kill-child \
    --propagation "$OCK_PROPAGATION" -- bash -c "$OCK_INNER" ock "$OCK_DIR" $$ \
    "$OCK_PROPAGATION" > "$OCK_DIR/ns.log" 2>&1 &
  OCK_NS_PID=$!
  for ((i = 0; i < 200; i++)); do
    if [[ -f $OCK_DIR/skip ]] || { ! kill -0 "$OCK_NS_PID" 2>/dev/null && [[ -f $OCK_DIR/skip ]]; }; then
      ock_stop
      echo "SKIP: $(cat "$OCK_DIR/skip")"
      exit 77
    fi
    kill -0 "$OCK_NS_PID" 2>/dev/null || fail "opencryptoki's namespace exited: $(cat "$OCK_DIR/ns.log" "$OCK_DIR/pkcsslotd.log" 2>/dev/null)"
    [[ -S $OCK_DIR/run/pkcsslotd.socket || -S $OCK_DIR/run/opencryptoki/pkcsslotd.socket ]] && break
    sleep 0.05
  done
  ((i < 200)) || fail "pkcsslotd made no socket in 10 s: $(cat "$OCK_DIR/ns.log" "$OCK_DIR/pkcsslotd.log" 2>/dev/null)"
  # unshare itself is in the new mount and IPC namespaces (its child, in
  # the PID namespace too). -r -w: entering a mount namespace resets the
  # root to the namespace's, which in a chroot is not the chroot.
  TOK_RUN="nsenter -t $OCK_NS_PID -m -i -r -w --"
  KEYD_WRAPPER="$TOK_RUN"
  SOFTHSM_MODULE=$OCK_MODULE
}

ock__pkcsconf() {
  ${TOK_RUN} pkcsconf -c "$OCK_SLOT" "$@" > "$OCK_DIR/pkcsconf.log" 2>&1 ||
    fail "pkcsconf $*: $(cat "$OCK_DIR/pkcsconf.log")"
}

ock_make_token() {
  TOKEN=$1
  local tmp_pin=${PIN}9
  # -I reads the label from stdin. The user PIN is set with a first value
  # and then changed: opencryptoki marks a PIN set by the SO as "to be
  # changed".
  echo "$TOKEN" | ock__pkcsconf -I -S "$OCK_DEFAULT_SO_PIN"
  ock__pkcsconf -P -S "$OCK_DEFAULT_SO_PIN" -n "$SO_PIN"
  ock__pkcsconf -u -S "$SO_PIN" -n "$tmp_pin"
  ock__pkcsconf -p -U "$tmp_pin" -n "$PIN"
  tok_mech_list "$OCK_DIR/mechs"
  RSA_ID=02
  ock__p11 --keypairgen --key-type rsa:2048 --label rsa --id "$RSA_ID" --sensitive
  P256_ID=
  if tok_has_mech "$OCK_DIR/mechs" ECDSA-KEY-PAIR-GEN generate_key_pair; then
    P256_ID=01
    ock__p11 --keypairgen --key-type EC:prime256v1 --label p256 --id "$P256_ID" --sensitive
  fi
}

ock__p11() {
  ${TOK_RUN} pkcs11-tool --module "$OCK_MODULE" --token-label "$TOKEN" --login --pin "$PIN" \
    "$@" > "$OCK_DIR/p11.log" 2>&1 || fail "pkcs11-tool $*: $(cat "$OCK_DIR/p11.log")"
}

# ock_add_aes LABEL ID: an AES-256 key (the --check-config test of
# CKM_AES_GCM).
ock_add_aes() {
  ock__p11 --keygen --key-type AES:32 --label "$1" --id "$2" --sensitive
}

ock_stop() {
  [[ -n $OCK_NS_PID ]] || return 0
  kill -KILL "$OCK_NS_PID" 2>/dev/null || true
  wait "$OCK_NS_PID" 2>/dev/null || true
  OCK_NS_PID=
}
