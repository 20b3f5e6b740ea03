# keyd_checks.sh: the checks that token_tpm2.sh and token_opencryptoki.sh
# run against keyd on their token, after the token's harness has made the
# token (TOKEN, PIN, SOFTHSM_MODULE, P256_ID, RSA_ID; P256_ID empty when
# the token has no EC key). What keyd must do is taken from the token's
# own mechanism list (pkcs11-tool -M) and from what the token decrypts by
# itself (pkcs11-tool --decrypt), so that one test passes on the module
# versions of Debian 12 and 13 alike.
#
#   tok_checks_prepare   reads the token: its mechanisms, public keys and
#                        OAEP hashes; sets EC_ALGS, RSA_ALGS, RSA_NO_ALGS,
#                        OAEP_HASHES, OAEP_NO_HASHES
#   tok_check_config_gcm AES_LABEL: --check-config of an SRTP KEK on the
#                        token names CKM_AES_GCM when the token lacks it
#   tok_write_config     [key p256] (sign), [key rsa] (sign, decrypt)
#   tok_check_serving    every algorithm, verified; OAEP; list; pubkey
#   tok_check_sighup, tok_check_sigusr2, tok_check_sigterm: the signals
#                        as docs/operations.md documents them
#   tok_check_keygen     keyd-backup keygen on the token
#   tok_check_all        all of the above, in order, on a token made with
#                        an AES key labelled kek

# Milliseconds since the test started, for the timing lines.
tok_t0=$(date +%s%N)
tok_time() { echo "time: $1 after $(( ($(date +%s%N) - tok_t0) / 1000000 )) ms"; }

tok_checks_prepare() {
  local h
  tok_mech_list "$T/mechs"
  EC_ALGS=() RSA_ALGS=() RSA_NO_ALGS=() OAEP_NO_HASHES=()
  if [[ -n ${P256_ID:-} ]]; then
    tok_has_mech "$T/mechs" ECDSA sign ||
      fail "token $TOKEN holds an EC key but has no CKM_ECDSA to sign: $(cat "$T/mechs")"
    EC_ALGS=(ecdsa-sha256 ecdsa-sha384 ecdsa-sha512)
    tok_export_pub "$P256_ID" "$T/p256.pem"
  fi
  # keyd hashes, and has the token sign with CKM_RSA_PKCS (a DigestInfo)
  # and CKM_RSA_PKCS_PSS (docs/configuration.md); the token's hash-and-sign
  # mechanisms (SHA256-RSA-PKCS) play no part.
  tok_has_mech "$T/mechs" RSA-PKCS sign ||
    fail "token $TOKEN has no CKM_RSA_PKCS to sign: keyd cannot sign with RSA there"
  RSA_ALGS=(rsa-pkcs1-sha256 rsa-pkcs1-sha384 rsa-pkcs1-sha512)
  if tok_has_mech "$T/mechs" RSA-PKCS-PSS sign; then
    RSA_ALGS+=(rsa-pss-sha256 rsa-pss-sha384 rsa-pss-sha512)
  else
    RSA_NO_ALGS=(rsa-pss-sha256 rsa-pss-sha384 rsa-pss-sha512)
  fi
  tok_has_mech "$T/mechs" RSA-PKCS-OAEP decrypt ||
    fail "token $TOKEN has no CKM_RSA_PKCS_OAEP to decrypt"
  tok_export_pub "$RSA_ID" "$T/rsa.pem"
  read -r -a OAEP_HASHES <<< "$(tok_oaep_hashes "$T/rsa.pem" "$RSA_ID")"
  ((${#OAEP_HASHES[@]} > 0)) || fail "token $TOKEN decrypts OAEP with no hash through pkcs11-tool"
  for h in sha1 sha256 sha384 sha512; do
    [[ " ${OAEP_HASHES[*]} " == *" $h "* ]] || OAEP_NO_HASHES+=("$h")
  done
  echo "token $TOKEN: sign with ${EC_ALGS[*]:+${EC_ALGS[*]} }${RSA_ALGS[*]}${RSA_NO_ALGS:+ (not ${RSA_NO_ALGS[*]})};" \
    "OAEP with ${OAEP_HASHES[*]}${OAEP_NO_HASHES:+ (not ${OAEP_NO_HASHES[*]})}"
}

# tok_check_config_gcm LABEL: an AES key LABEL on the token as an SRTP
# KEK. Without CKM_AES_GCM (encrypt and decrypt) in the token's list,
# --check-config must fail naming the key, the op and the mechanism; with
# it, the configuration is valid.
tok_check_config_gcm() {
  local rc=0
  write_config <<CONF
[key kek]
uri = pkcs11:token=$TOKEN;object=$1;type=secret-key
ops = srtp-new, srtp-open
[client me]
uid = $(id -u)
keys = kek
ops = srtp-new, srtp-open
CONF
  ${TOK_RUN:-} "$KEYD" -c "$T/keyd.conf" --check-config > "$T/check.out" 2>&1 || rc=$?
  if tok_has_mech "$T/mechs" AES-GCM encrypt && tok_has_mech "$T/mechs" AES-GCM decrypt; then
    [[ $rc -eq 0 ]] || fail "--check-config of a KEK on a token with CKM_AES_GCM exited $rc: $(cat "$T/check.out")"
    pass "--check-config: token $TOKEN has CKM_AES_GCM, an SRTP KEK there is valid"
  else
    [[ $rc -eq 1 ]] || fail "--check-config of a KEK on a token without CKM_AES_GCM exited $rc, not 1: $(cat "$T/check.out")"
    grep -q "^keyd: error: key 'kek' has ops = srtp-new/srtp-open, but token '$TOKEN' cannot do .*CKM_AES_GCM" "$T/check.out" ||
      fail "--check-config does not name CKM_AES_GCM: $(cat "$T/check.out")"
    pass "--check-config names the missing CKM_AES_GCM: $(grep '^keyd: error:' "$T/check.out")"
  fi
}

tok_write_config() {
  local ec_key=
  if [[ -n ${P256_ID:-} ]]; then
    ec_key=$(printf '[key p256]\nuri = pkcs11:token=%s;object=p256;type=private\nops = sign\n' "$TOKEN")
  fi
  write_config <<CONF
audit_sync = request
$ec_key
[key rsa]
uri = pkcs11:token=$TOKEN;object=rsa;type=private
ops = sign, decrypt
[client me]
uid = $(id -u)
keys = ${P256_ID:+p256, }rsa
ops = sign, decrypt, status
CONF
}

# tok_check_keys WHEN: each key signs with each algorithm the token has,
# each checked by OpenSSL against the token's own public key.
tok_check_keys() {
  if ((${#EC_ALGS[@]} > 0)); then tok_sign_all p256 "$T/p256.pem" "${EC_ALGS[@]}"; fi
  tok_sign_all rsa "$T/rsa.pem" "${RSA_ALGS[@]}"
  tok_decrypt_all rsa "$T/rsa.pem" "${OAEP_HASHES[0]}"
  pass "$1: signatures verified (${EC_ALGS[*]:+${EC_ALGS[*]} }${RSA_ALGS[*]}), rsa-oaep-${OAEP_HASHES[0]} decrypts"
}

tok_check_serving() {
  local alg h want
  # The public keys keyd serves are the token's.
  if [[ -n ${P256_ID:-} ]]; then
    "$KEYDCTL" pubkey p256 > "$T/served.pem" || fail "pubkey p256"
    cmp -s <(openssl pkey -pubin -in "$T/served.pem" -outform DER) \
      <(openssl pkey -pubin -in "$T/p256.pem" -outform DER) || fail "keyd serves another p256 public key"
  fi
  "$KEYDCTL" pubkey rsa > "$T/served.pem" || fail "pubkey rsa"
  cmp -s <(openssl pkey -pubin -in "$T/served.pem" -outform DER) \
    <(openssl pkey -pubin -in "$T/rsa.pem" -outform DER) || fail "keyd serves another rsa public key"
  pass "keyd serves the public keys pkcs11-tool reads from the token"

  tok_check_keys "every algorithm"
  for alg in "${RSA_NO_ALGS[@]}"; do
    if "$KEYDCTL" sign rsa -a "$alg" -i "$T/msg" -o "$T/sig" 2> "$T/err"; then
      fail "sign rsa $alg succeeded on a token without CKM_RSA_PKCS_PSS"
    fi
  done
  [[ ${#RSA_NO_ALGS[@]} -eq 0 ]] || pass "${RSA_NO_ALGS[*]} fail: no CKM_RSA_PKCS_PSS on the token"

  # OAEP: every hash the token decrypts with, and keyd's list names
  # exactly those; the others are refused.
  tok_decrypt_all rsa "$T/rsa.pem" "${OAEP_HASHES[@]}"
  want=$(printf 'rsa-oaep-%s,' "${OAEP_HASHES[@]}"); want=${want%,}
  "$KEYDCTL" list > "$T/list" || fail "list"
  grep -Eq "^rsa +rsa +2048 +sign,decrypt \($want\)( |\$)" "$T/list" ||
    fail "list does not name the OAEP hashes ($want): $(cat "$T/list")"
  for h in "${OAEP_NO_HASHES[@]}"; do
    openssl pkeyutl -encrypt -pubin -inkey "$T/rsa.pem" -pkeyopt rsa_padding_mode:oaep \
      -pkeyopt "rsa_oaep_md:$h" -pkeyopt "rsa_mgf1_md:$h" -in "$T/pt" -out "$T/ct"
    expect_fail "not supported by this token" "$KEYDCTL" decrypt rsa -a "rsa-oaep-$h" -i "$T/ct" -o "$T/out"
  done
  pass "OAEP decrypts with ${OAEP_HASHES[*]}${OAEP_NO_HASHES:+, refuses ${OAEP_NO_HASHES[*]}}; list names $want"
}

# The signals, as docs/operations.md documents them; after SIGHUP and
# SIGUSR2 keyd still serves every algorithm.
# tok__alive WHAT: keyd is still there after WHAT (a signal a thread of
# the module took, or a syscall the sandbox refused, kills it).
tok__alive() {
  local rc=0
  sleep 0.5
  if ! kill -0 "$KEYD_PID" 2>/dev/null; then
    wait "$KEYD_PID" || rc=$?
    KEYD_PID=
    ((rc > 128)) && fail "$1 killed keyd: exit status $rc (SIG$(kill -l $((rc - 128))))"
    fail "$1: keyd exited with status $rc"
  fi
}

# tok_check_sighup: a checkpoint (none here: no audit_key), then the audit
# log reopened by its path, the new file getting the next lines.
tok_check_sighup() {
  mv "$T/audit.jsonl" "$T/audit.jsonl.1"
  kill -HUP "$KEYD_PID"
  tok__alive SIGHUP
  wait_for "$T/audit.jsonl" '"event":"log-reopened"' 5
  tok_check_keys "after SIGHUP"
  grep -q '"op":"sign","key":"rsa"' "$T/audit.jsonl" || fail "no request line in the reopened log"
  ! grep -q '"event":"log-reopened"' "$T/audit.jsonl.1" || fail "the reopen went to the old file"
  pass "SIGHUP: keyd reopens its audit log and serves on"
}

# tok_check_sigusr2: the keys read from the token again (a new session and
# login), a keys-reload line.
tok_check_sigusr2() {
  kill -USR2 "$KEYD_PID"
  tok__alive SIGUSR2
  wait_for "$T/audit.jsonl" '"event":"keys-reload"' 5
  grep -q "SIGUSR2: reading the keys from the token again" "$T/keyd.log" || fail "no SIGUSR2 line in keyd's log"
  tok_check_keys "after SIGUSR2"
  tok__alive "SIGUSR2 and requests"
  pass "SIGUSR2: keyd reads its keys again and serves on"
}

# tok_check_sigterm: exit 0 (logout, C_Finalize), socket removed, the stop
# record last in the audit log.
tok_check_sigterm() {
  local pid=$KEYD_PID rc=0 last
  kill -TERM "$KEYD_PID"
  wait "$KEYD_PID" || rc=$?
  KEYD_PID=
  ((rc > 128)) && fail "SIGTERM: keyd exited with status $rc (SIG$(kill -l $((rc - 128)))), not 0"
  [[ $rc -eq 0 ]] || fail "SIGTERM: keyd exited with status $rc, not 0"
  [[ ! -e $T/run/keyd.sock ]] || fail "SIGTERM: socket file left"
  last=$(tail -n 1 "$T/audit.jsonl")
  [[ $(json_field "$last" event) == stop && $(json_field "$last" result) == ok ]] ||
    fail "SIGTERM: the audit log's last line is not the stop record: $last"
  grep -q "keyd: stopping on signal 15" "$T/keyd.log" || fail "SIGTERM: no stop line in keyd's log"
  ! kill -0 "$pid" 2>/dev/null || fail "SIGTERM: keyd still running"
  pass "SIGTERM: exit 0, socket removed, stop record last"
}

# tok_check_keygen: keyd-backup keygen on this token. A key that can be
# backed up (sensitive, extractable only under a trusted key) is made
# where the token can hold one; where it cannot, keygen says why in one
# line and names --no-backup. With --no-backup an RSA signing key (and a
# P-256 one where the token makes EC keys) is made, sensitive and not
# extractable, and keyd serves signatures with each that OpenSSL verifies
# against the public key pkcs11-tool reads from the token.
tok_check_keygen() {
  local kb=$KEYD_BUILD_DIR/keyd/keyd-backup rc=0 keys=kg-rsa
  local -a base=(keygen --module "$SOFTHSM_MODULE" --token "pkcs11:token=$TOKEN" --pin-file "$T/pin")
  ${TOK_RUN:-} "$kb" "${base[@]}" --type rsa:2048 --label kg-backup --id 70 --usage sign \
    > "$T/kg.out" 2> "$T/kg.err" || rc=$?
  if [[ $rc -eq 0 ]]; then
    grep -q '^  flags: .*sensitive.*extractable.*wrap-with-trusted' "$T/kg.out" ||
      fail "keygen made a key that can be backed up without the flags for it: $(cat "$T/kg.out")"
    pass "keygen: token $TOKEN holds a key that can be backed up"
  else
    # One line of keyd-backup's own (the module may print its own too:
    # tpm2-pkcs11 writes "ERROR: ..." lines to stderr).
    [[ $(grep -c '^keyd-backup:' "$T/kg.err") -eq 1 ]] &&
      grep -q "^keyd-backup: token '$TOKEN' cannot hold this key so that it can be backed up: .*; make it with --no-backup" "$T/kg.err" ||
      fail "keygen's refusal is not one line naming --no-backup (exit $rc): $(cat "$T/kg.err")"
    pass "keygen: $(grep '^keyd-backup:' "$T/kg.err")"
  fi
  ${TOK_RUN:-} "$kb" "${base[@]}" --type rsa:2048 --label kg-rsa --id 71 --usage sign --no-backup \
    > "$T/kg.out" 2> "$T/kg.err" || fail "keygen --no-backup rsa:2048: $(cat "$T/kg.err")"
  grep -q '^  backup: none (not extractable)$' "$T/kg.out" || fail "keygen --no-backup rsa: $(cat "$T/kg.out")"
  tok_export_pub 71 "$T/kg-rsa.pem"
  if ((${#EC_ALGS[@]} > 0)); then
    ${TOK_RUN:-} "$kb" "${base[@]}" --type ec:p256 --label kg-ec --id 72 --usage sign --no-backup \
      > "$T/kg.out" 2> "$T/kg.err" || fail "keygen --no-backup ec:p256: $(cat "$T/kg.err")"
    tok_export_pub 72 "$T/kg-ec.pem"
    keys="kg-rsa, kg-ec"
  fi
  write_config <<CONF
[key kg-rsa]
uri = pkcs11:token=$TOKEN;object=kg-rsa;type=private
ops = sign
$( ((${#EC_ALGS[@]} > 0)) && printf '[key kg-ec]\nuri = pkcs11:token=%s;object=kg-ec;type=private\nops = sign\n' "$TOKEN")
[client me]
uid = $(id -u)
keys = $keys
ops = sign
CONF
  start_keyd
  tok_sign_all kg-rsa "$T/kg-rsa.pem" rsa-pkcs1-sha256
  if ((${#EC_ALGS[@]} > 0)); then tok_sign_all kg-ec "$T/kg-ec.pem" ecdsa-sha256; fi
  stop_keyd
  pass "keygen --no-backup: ${keys} made on token $TOKEN, and keyd signs with them"
}

# tok_check_all: every check above on the token the harness made (its
# AES key labelled kek), with keyd's start timed.
tok_check_all() {
  write_pin
  tok_checks_prepare
  tok_check_config_gcm kek
  tok_check_keygen
  tok_write_config
  start_keyd
  tok_time "keyd serving"
  tok_check_serving
  tok_check_sighup
  tok_check_sigusr2
  tok_check_sigterm
  tok_time "done"
}
