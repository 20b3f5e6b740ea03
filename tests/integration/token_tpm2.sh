#!/usr/bin/env bash
# token_tpm2.sh: keyd on a TPM 2.0 (swtpm, tpm2-abrmd on a private D-Bus
# bus, tpm2-pkcs11; tests/tokens/tpm2.sh), with its sandbox on. keyd
# serves the token's ECDSA P-256 and RSA-2048 keys: every algorithm the
# token's mechanism list allows, each signature verified by OpenSSL against
# the public key pkcs11-tool reads from the token; RSA-OAEP with every hash
# the token decrypts with by itself, and keyd's list names those; an SRTP
# KEK without CKM_AES_GCM is a --check-config error naming it. Then
# SIGHUP, SIGUSR2 and SIGTERM as docs/operations.md documents them, with
# the threads tpm2-pkcs11 starts in C_Initialize (GLib's) in keyd: SIGTERM
# exits 0 with the stop record last. Skipped (77) without the packages.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
source "$KEYD_SOURCE_DIR/tests/tokens/tpm2.sh"
source "$KEYD_SOURCE_DIR/tests/tokens/keyd_checks.sh"

tpm2_need
tpm2_start
tok_time "swtpm, D-Bus and tpm2-abrmd up"
tpm2_make_token keydtpm
tpm2_add_aes kek "$(tpm2__hex 03)"
tok_time "token and keys made"
tok_check_all

# The module loses its device: tpm2-abrmd restarts under a running keyd.
# tpm2-pkcs11 never recovers in the same process (every call fails with
# CKR_GENERAL_ERROR); keyd's health probe fails after a re-login, the
# token process exits, and a fresh one (a fresh C_Initialize) serves. keyd
# itself is not restarted. The test says how long it took.
start_keyd
tok_check_keys "before tpm2-abrmd restarts"
SERVE=$(serve_pid) || fail "no socket-facing process"
TOK1=$(token_pids) || fail "no token process"
tpm2_abrmd_restart
t0=$(date +%s%N)
ok=0
for i in $(seq 1 150); do
  if "$KEYDCTL" sign rsa -a rsa-pkcs1-sha256 -i "$T/msg" -o "$T/sig" 2> "$T/err"; then ok=1; break; fi
  sleep 0.2
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
((ok)) || fail "keyd did not recover within 30 s of tpm2-abrmd's restart: $(cat "$T/err"); $(tail -5 "$T/keyd.log")"
verify_sig rsa-pkcs1-sha256 "$T/rsa.pem" "$T/msg" "$T/sig" >/dev/null || fail "bad signature after the recovery"
[[ $(serve_pid) == "$SERVE" ]] || fail "the socket-facing process was restarted"
kill -0 "$KEYD_PID" || fail "keyd died"
if [[ $(token_pids) != "$TOK1" ]]; then
  grep -q "token process primary (token 'pkcs11:token=$TOKEN') ended: the token lost its device" "$T/keyd.log" ||
    fail "a new token process, but the log does not say why: $(tail -5 "$T/keyd.log")"
  how="a fresh token process"
else
  how="the same token process"
fi
tok_check_keys "after tpm2-abrmd's restart"
echo "time: keyd signed again $ms ms after tpm2-abrmd restarted ($how)"
stop_keyd
pass "tpm2-abrmd restarted: keyd recovered in $ms ms without a restart ($how)"
