#!/usr/bin/env bash
# make_seeds.sh: (re)writes the seed inputs (files named seed-*) of the fuzz
# corpora in tests/fuzz/corpus/, from a build directory that has built the
# target fuzz_make_seeds:
#
#   tests/fuzz/make_seeds.sh BUILD_DIR
#
#   frame_dispatch  frames for every request keyd knows, and bad frames:
#                   fuzz_make_seeds frames, against setup_token.sh's token
#   bundle          bundles of every key type: fuzz_make_seeds bundles
#   slip39          the SLIP-0039 test vectors (tests/vectors), fresh
#                   splits and share sheets: fuzz_make_seeds slip39
#   config          the configurations below
#
# The other files of a corpus (named by their SHA-1, as libFuzzer names
# them) are what fuzzing added and minimised; this script leaves them.
set -euo pipefail

B=${1:?usage: $0 BUILD_DIR}
S=$(cd "$(dirname "$0")" && pwd)
C=$S/corpus
GEN=$B/tests/fuzz_make_seeds
[[ -x $GEN ]] || { echo "$0: $GEN is not built (make fuzz_make_seeds)" >&2; exit 1; }
command -v jq >/dev/null || { echo "$0: jq is missing" >&2; exit 1; }

for d in frame_dispatch bundle slip39 config; do
  mkdir -p "$C/$d"
  rm -f "$C/$d"/seed-*
done

"$GEN" bundles "$C/bundle"
"$GEN" slip39 "$C/slip39"
bash "$S/setup_token.sh" "$GEN" frames "$C/frame_dispatch"

# The 45 vectors of tests/vectors/slip39-vectors.json, one file each: the
# mnemonics of a vector, one a line.
V=$S/../vectors/slip39-vectors.json
n=$(jq length "$V")
for ((i = 0; i < n; i++)); do
  jq -r ".[$i][1] | join(\"\n\")" "$V" >"$C/slip39/seed-vector-$(printf %02d $((i + 1)))"
done

# Configurations: users and groups by number, so that they resolve on any
# machine.
cfg() { cat >"$C/config/seed-$1"; }
cfg minimal <<'EOF'
[keyd]
module = /usr/lib/softhsm/libsofthsm2.so
token = pkcs11:token=sbc
audit_log = /var/log/keyd/audit.jsonl
EOF
cfg complete <<'EOF'
; the complete example of docs/configuration.md
[keyd]
socket       = /run/keyd/keyd.sock
socket_group = 0
module       = /usr/lib/softhsm/libsofthsm2.so
token        = pkcs11:token=sbc;serial=2a32829aa8e3c495
pin_file     = /etc/keyd/pin
user         = root
state_dir    = /var/lib/keyd
audit_log    = /var/log/keyd/audit.jsonl
audit_key    = pkcs11:token=sbc;object=keyd-audit;type=private
audit_checkpoint_lines = 1000
audit_checkpoint_interval = 60
audit_sync   = interval
audit_sync_ms = 10
syslog       = yes
sandbox      = yes
module_network = no
max_connections = 1024
max_frame    = 65536
max_inflight = 64
idle_timeout = 300
workers      = 0

[key sip-tls]
uri = pkcs11:token=sbc;object=sip-tls;type=private
ops = sign

[key sip-tls-rsa]
uri = pkcs11:token=sbc;object=sip-tls-rsa;type=private
ops = sign, decrypt
pkcs1_decrypt = implicit-rejection

[key wss]
uri = pkcs11:token=sbc;object=wss-ed25519;type=private
ops = sign

[key dtls]
uri = pkcs11:token=sbc;id=%06;type=private
ops = sign

[key srtp-kek]
uri      = pkcs11:token=sbc;object=srtp-kek-2;type=secret-key
ops      = srtp-new, srtp-open
previous = pkcs11:token=sbc;object=srtp-kek-1;type=secret-key
previous = pkcs11:token=sbc;object=srtp-kek-0;type=secret-key, pkcs11:token=sbc;id=%09

[client kamailio]
uid  = 1000, 1001
keys = sip-tls, sip-tls-rsa, wss, srtp-kek
ops  = sign, decrypt, srtp-new, srtp-open
rate = 5000/s
max_connections = 64

[client media]
gid  = 2000
keys = dtls, srtp-kek
ops  = sign, srtp-open
rate = 0.5/m
max_connections = 16

[client monitoring]
gid  = 2001
uid  = 0
ops  = status
rate = 10/h
EOF
cfg sync-request <<'EOF'
# comment
[keyd]
module = /usr/lib/softhsm/libsofthsm2.so
token = pkcs11:token=a
audit_log = /tmp/a.jsonl
audit_sync = request
sandbox = off
syslog = 1
srtp_limit_for_tests = 5
[key k]
uri = pkcs11:object=k
ops = srtp-new
[client c]
gid = 0
keys = k
ops = srtp-new, status
EOF
cfg errors <<'EOF'
[keyd]
module = /usr/lib/softhsm/libsofthsm2.so
module = /usr/lib/softhsm/libsofthsm2.so
token = pkcs11:token=a;pin-value=1234
 indented = yes
[key bad name!]
ops = sign, sign, srtp
[client]
uid = nosuchuser
EOF
cfg fuzz <<'EOF'
[keyd]
socket = /tmp/keyd-fuzz/keyd.sock
module = /usr/lib/softhsm/libsofthsm2.so
token = pkcs11:token=keyd-fuzz
pin_file = /tmp/keyd-fuzz/pin
audit_log = /tmp/keyd-fuzz/audit.jsonl
state_dir = /tmp/keyd-fuzz/state
sandbox = no

[key p256]
uri = pkcs11:token=keyd-fuzz;object=p256;type=private
ops = sign

[key rsa]
uri = pkcs11:token=keyd-fuzz;object=rsa;type=private
ops = sign, decrypt
pkcs1_decrypt = implicit-rejection

[key kek]
uri = pkcs11:token=keyd-fuzz;object=kek;type=secret-key
ops = srtp-new, srtp-open
previous = pkcs11:token=keyd-fuzz;object=kek-old;type=secret-key

[client fuzz]
uid = 0
keys = p256, rsa, kek
ops = sign, decrypt, srtp-new, srtp-open, status
EOF

for d in frame_dispatch bundle slip39 config; do
  echo "$d: $(ls "$C/$d" | grep -c '^seed-') seeds, $(ls "$C/$d" | wc -l) files"
done
