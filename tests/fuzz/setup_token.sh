#!/usr/bin/env bash
# setup_token.sh: runs a command with a SoftHSM2 token and a keyd
# configuration made for the dispatcher fuzz target (fuzz_frame_dispatch,
# its replay under ctest, or the seed generator), then removes them.
#
#   tests/fuzz/setup_token.sh CMD [ARG...]
#
# In a fresh temporary directory under ${TMPDIR:-/tmp} (TMPDIR=/dev/shm
# keeps SoftHSM2's token files in memory, which makes fuzzing faster) it
# makes the token keyd-fuzz with
#   p256     EC P-256, sign, with a certificate under its CKA_ID
#   rsa      RSA-2048, sign and decrypt (pkcs1_decrypt = implicit-rejection)
#   rsa2     RSA-2048, decrypt (RSA-OAEP only)
#   ed       Ed25519, sign
#   kek      AES-256 SRTP KEK, and kek-old, its previous version
#   hid      EC P-256, sign, that the client may not use
# a PIN file, and keyd.conf with a [client fuzz] of the current uid that
# may do every op on every key but hid. CMD runs with KEYD_FUZZ_CONFIG
# naming keyd.conf and SOFTHSM2_CONF naming the token's configuration;
# its exit status is this script's.
#
# The KEKs have fixed values, so that the srtp-open seeds, made once by
# make_seeds, open under every token this script makes. They are test
# values and protect nothing.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 CMD [ARG...]" >&2
  exit 2
fi

SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
TOKEN=keyd-fuzz
PIN=1234
SO_PIN=5678
KEK=6b6579642d66757a7a2d6b656b2d76322d746573742d6f6e6c792d2d2d2d2d21
KEK_OLD=6b6579642d66757a7a2d6b656b2d76312d746573742d6f6e6c792d2d2d2d2d21

for tool in softhsm2-util pkcs11-tool openssl xxd; do
  command -v "$tool" >/dev/null ||
    { echo "$0: $tool is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
[[ -f $SOFTHSM_MODULE ]] ||
  { echo "$0: no SoftHSM2 module at $SOFTHSM_MODULE (set SOFTHSM_MODULE)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/keyd-fuzz.XXXXXX")
trap 'rm -rf "$T"' EXIT
chmod 700 "$T"
mkdir "$T/tokens"
export SOFTHSM2_CONF=$T/softhsm2.conf
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$T/tokens" >"$SOFTHSM2_CONF"

softhsm2-util --init-token --free --label "$TOKEN" --pin "$PIN" \
  --so-pin "$SO_PIN" >/dev/null
p11() {
  pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --login \
    --pin "$PIN" "$@" >/dev/null 2>"$T/p11.err" ||
    { cat "$T/p11.err" >&2; echo "$0: pkcs11-tool $* failed" >&2; exit 1; }
}
pair() { p11 --keypairgen --key-type "$1" --label "$2" --id "$3" --sensitive "${@:4}"; }
aes() {
  xxd -r -p <<<"$3" >"$T/k.bin"
  p11 --write-object "$T/k.bin" --type secrkey --key-type AES:32 --label "$1" \
    --id "$2" --sensitive --usage-decrypt
  rm -f "$T/k.bin"
}

pair EC:prime256v1 p256 01 --usage-sign
pair rsa:2048 rsa 02 --usage-sign --usage-decrypt
pair EC:edwards25519 ed 03 --usage-sign
aes kek 04 "$KEK"
aes kek-old 05 "$KEK_OLD"
pair EC:prime256v1 hid 06 --usage-sign
pair rsa:2048 rsa2 07 --usage-decrypt
# A certificate under p256's CKA_ID, for the cert op. keyd pairs it by
# CKA_ID only, so a throwaway key of OpenSSL's may sign it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$T/cert.key" -subj /CN=keyd-fuzz -days 1 -outform DER \
  -out "$T/cert.der" 2>/dev/null
p11 --write-object "$T/cert.der" --type cert --id 01 --label p256
rm -f "$T/cert.key"

printf '%s\n' "$PIN" >"$T/pin"
chmod 0400 "$T/pin"
uri="pkcs11:token=$TOKEN"
cat >"$T/keyd.conf" <<CONF
[keyd]
socket = $T/keyd.sock
module = $SOFTHSM_MODULE
token = $uri
pin_file = $T/pin
audit_log = $T/audit.jsonl
state_dir = $T/state
sandbox = no

[key p256]
uri = $uri;object=p256;type=private
ops = sign

[key rsa]
uri = $uri;object=rsa;type=private
ops = sign, decrypt
pkcs1_decrypt = implicit-rejection

[key ed]
uri = $uri;object=ed;type=private
ops = sign

[key kek]
uri = $uri;object=kek;type=secret-key
ops = srtp-new, srtp-open
previous = $uri;object=kek-old;type=secret-key

[key hid]
uri = $uri;object=hid;type=private
ops = sign

[key rsa2]
uri = $uri;object=rsa2;type=private
ops = decrypt

[client fuzz]
uid = $(id -u)
keys = p256, rsa, ed, kek, rsa2
ops = sign, decrypt, srtp-new, srtp-open, status
# The limiter runs, and never refuses: its burst is 10^7 requests.
rate = 10000000/s
CONF
chmod 0600 "$T/keyd.conf"

export KEYD_FUZZ_CONFIG=$T/keyd.conf
# Not exec: the trap removes the directory once CMD is done.
rc=0
"$@" || rc=$?
exit $rc
