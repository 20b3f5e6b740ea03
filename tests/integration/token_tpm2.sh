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
