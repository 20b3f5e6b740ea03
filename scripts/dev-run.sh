#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, installs the
# programs into /usr/local, makes (once) a development SoftHSM2 token with
# demo keys and an audit key under run/, exports the audit key's public key
# to run/audit.pem, and runs keyd in the foreground on run/keyd.sock.
# Running it again reuses the token (adding the audit key to a token made
# before it). Development only: the PIN is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=$ROOT/run
TOKEN=keyd-dev
PIN=1234
SO_PIN=12345678
MODULE=/usr/lib/softhsm/libsofthsm2.so

if [[ $(id -u) -ne 0 ]]; then
  echo "keyd: run this as root (it installs packages and runs keyd as root in dev mode)" >&2
  exit 1
fi
bash scripts/deps.sh
echo "keyd: building in build/" >&2
bash scripts/build.sh
cmake --install build --prefix /usr/local >/dev/null
ldconfig

mkdir -p "$RUN/tokens"
chmod 0755 "$RUN"
export SOFTHSM2_CONF=$RUN/softhsm2.conf
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$RUN/tokens" > "$SOFTHSM2_CONF"

printf '%s\n' "$PIN" > "$RUN/pin"
chmod 0400 "$RUN/pin"

# Sensitive, and extractable only under a key the SO makes trusted
# (keyd-backup create): keyd prints no weak-extractable warning for them.
kb() { /usr/local/bin/keyd-backup keygen --module "$MODULE" \
  --token "pkcs11:token=$TOKEN" --pin-file "$RUN/pin" "$@" >/dev/null; }
# Whether the token holds the audit key; its public key, as keyd-audit
# verify --pubkey takes it.
has_audit_key() {
  local objs
  objs=$(pkcs11-tool --module "$MODULE" --token-label "$TOKEN" --list-objects \
    --type pubkey 2>/dev/null) && grep -q 'label: *keyd-audit$' <<<"$objs"
}
audit_pub() {
  pkcs11-tool --module "$MODULE" --token-label "$TOKEN" --read-object \
    --type pubkey --label keyd-audit -o "$RUN/audit.der" >/dev/null
  openssl pkey -pubin -inform DER -in "$RUN/audit.der" -out "$RUN/audit.pem"
}

if ! slots=$(softhsm2-util --show-slots 2>/dev/null) || ! grep -q "Label:.*$TOKEN" <<<"$slots"; then
  echo "keyd: creating the development token '$TOKEN' in run/tokens" >&2
  softhsm2-util --init-token --free --label "$TOKEN" --pin "$PIN" --so-pin "$SO_PIN" >/dev/null
  kb --type ec:p256 --label sip-tls --id 01 --usage sign
  kb --type rsa:2048 --label sip-tls-rsa --id 02 --usage sign,decrypt
  kb --type aes:256 --label srtp-kek --id 03 --usage srtp
else
  echo "keyd: reusing the development token '$TOKEN' in run/tokens" >&2
fi
# The audit key signs the log's checkpoints. No [key] names it, so no
# client can sign with it (keyd refuses an audit key that is a served key).
# A token made before dev-run.sh made one gets it now; the log written
# without it has no checkpoints and would not verify, so it is moved aside.
if ! has_audit_key; then
  echo "keyd: adding the audit key 'keyd-audit' to the token '$TOKEN'" >&2
  kb --type ec:p256 --label keyd-audit --id 04 --usage sign
  if [[ -s $RUN/audit.jsonl ]]; then
    mv "$RUN/audit.jsonl" "$RUN/audit.jsonl.unsigned"
    echo "keyd: the audit log written without the audit key is now run/audit.jsonl.unsigned" >&2
  fi
fi
audit_pub
rm -f "$RUN/audit.der"

users="root"
group_line=""
if [[ -n ${SUDO_USER:-} && ${SUDO_USER} != root ]]; then
  # The user who ran sudo may connect too: through the socket's group.
  users="root, $SUDO_USER"
  group_line="socket_group = $(id -gn "$SUDO_USER")"
fi
cat > "$RUN/keyd.conf" <<CONF
; Development configuration written by scripts/dev-run.sh.
[keyd]
socket = $RUN/keyd.sock
module = $MODULE
token = pkcs11:token=$TOKEN
pin_file = $RUN/pin
audit_log = $RUN/audit.jsonl
audit_key = pkcs11:token=$TOKEN;object=keyd-audit;type=private
state_dir = $RUN/state
$group_line

[key sip-tls]
uri = pkcs11:token=$TOKEN;object=sip-tls;type=private
ops = sign

[key sip-tls-rsa]
uri = pkcs11:token=$TOKEN;object=sip-tls-rsa;type=private
ops = sign, decrypt

[key srtp-kek]
uri = pkcs11:token=$TOKEN;object=srtp-kek;type=secret-key
ops = srtp-new, srtp-open

[client dev]
uid = $users
keys = sip-tls, sip-tls-rsa, srtp-kek
ops = sign, decrypt, srtp-new, srtp-open, status
CONF
chmod 0600 "$RUN/keyd.conf"

cat <<HINTS

keyd is starting on run/keyd.sock (Ctrl-C stops it). In a second shell, from $ROOT:

  keydctl -s run/keyd.sock list
  echo 'hello keyd' > /tmp/msg
  keydctl -s run/keyd.sock sign sip-tls -a ecdsa-sha256 -i /tmp/msg -o /tmp/msg.sig
  keydctl -s run/keyd.sock pubkey sip-tls -o /tmp/sip-tls.pem
  openssl dgst -sha256 -verify /tmp/sip-tls.pem -signature /tmp/msg.sig /tmp/msg
  srtp=\$(keydctl -s run/keyd.sock srtp new srtp-kek -S AES_CM_128_HMAC_SHA1_80 -C call-1); echo "\$srtp"
  keydctl -s run/keyd.sock srtp open srtp-kek "\${srtp#*blob:}" -C call-1
  keydctl -s run/keyd.sock status
  tail -n 3 run/audit.jsonl

The token lives where run/softhsm2.conf says; keyd finds it only with
SOFTHSM2_CONF set, as here. To check the configuration or list the token:

  SOFTHSM2_CONF=$SOFTHSM2_CONF keyd -c run/keyd.conf --check-config
  SOFTHSM2_CONF=$SOFTHSM2_CONF softhsm2-util --show-slots

After Ctrl-C (a clean stop signs a last checkpoint), verify the audit log
with the audit key's public key:

  keyd-audit verify run/audit.jsonl --pubkey run/audit.pem

HINTS
exec /usr/local/sbin/keyd -c "$RUN/keyd.conf"
