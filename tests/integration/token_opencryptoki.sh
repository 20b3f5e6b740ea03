#!/usr/bin/env bash
# token_opencryptoki.sh: keyd on opencryptoki's soft token (pkcsslotd,
# pkcsconf; tests/tokens/opencryptoki.sh runs them in private namespaces
# under $T), with its sandbox on. keyd serves the token's RSA-2048 key,
# and its P-256 key where the token makes EC keys (3.23, not 3.8.1): every
# algorithm the token's mechanism list allows, each signature verified by
# OpenSSL against the public key pkcs11-tool reads from the token;
# RSA-OAEP with every hash the token decrypts with by itself, and keyd's
# list names those; an SRTP KEK without CKM_AES_GCM is a --check-config
# error naming it. Then SIGHUP, SIGUSR2 (a re-login: opencryptoki rewrites
# its token file with fchmod and fchown) and SIGTERM (C_Finalize calls
# shmdt) as docs/operations.md documents them: SIGTERM exits 0 with the
# stop record last (keyd's seccomp filter allows those three calls; it
# killed keyd with SIGSYS before). Skipped (77) unless root with the
# packages.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
source "$KEYD_SOURCE_DIR/tests/tokens/opencryptoki.sh"
source "$KEYD_SOURCE_DIR/tests/tokens/keyd_checks.sh"

ock_need
ock_start
tok_time "pkcsslotd up"
ock_make_token keydock
ock_add_aes kek 03
tok_time "token and keys made"
tok_check_all
