# common.sh: what the token harnesses (tpm2.sh, opencryptoki.sh) share.
# Sourced by them after tests/integration/lib.sh, whose $T, cleanup and
# helpers they build on.

# Sanitizer builds: tests/tokens/lsan.supp's suppressions (leaks inside
# the token modules) on top of lib.sh's, unless LSAN_OPTIONS was set
# from outside.
if [[ $LSAN_OPTIONS == "suppressions=$KEYD_SOURCE_DIR/tests/integration/lsan.supp:print_suppressions=0" ]]; then
  cat "$KEYD_SOURCE_DIR/tests/integration/lsan.supp" "$KEYD_SOURCE_DIR/tests/tokens/lsan.supp" > "$T/lsan.supp"
  export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0"
fi

# tok_need_cmds PACKAGES -- CMD...: exit 77 with one line naming the
# missing commands and the Debian packages that hold them (scripts/deps.sh
# installs them; a machine without them skips the test).
tok_need_cmds() {
  local pkgs=$1 c missing=(); shift
  [[ $1 == -- ]] && shift
  for c in "$@"; do
    if [[ $c == /* ]]; then [[ -e $c ]] || missing+=("$c")
    else command -v "$c" >/dev/null 2>&1 || missing+=("$c"); fi
  done
  if ((${#missing[@]} > 0)); then
    echo "SKIP: no ${missing[*]} (Debian packages: $pkgs)"
    exit 77
  fi
}

# tok_on_exit FUNC: runs FUNC when the test exits, after keyd is stopped
# and before lib.sh's cleanup removes $T, keeping the test's exit status.
# keyd goes first: no token service may vanish under a running keyd
# while the test still reads its log.
TOK_EXIT_FUNCS=()
tok_on_exit() { TOK_EXIT_FUNCS+=("$1"); trap tok__exit EXIT; }
tok__exit() {
  local rc=$? f
  # Under set -e, the (exit "$rc") below would end the trap before
  # cleanup when rc is not 0.
  set +e
  if [[ -n ${KEYD_PID:-} ]] && kill -0 "$KEYD_PID" 2>/dev/null; then
    kill -TERM "$KEYD_PID" 2>/dev/null || true
    wait "$KEYD_PID" 2>/dev/null || true
  fi
  for f in "${TOK_EXIT_FUNCS[@]}"; do "$f" || true; done
  (exit "$rc")
  cleanup
}

# tok_stop_pid PID: SIGTERM, then SIGKILL if PID is still there after 2 s;
# reaps it (PID must be a child of this shell).
tok_stop_pid() {
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# tok_mech_list OUT: the token's mechanism list as pkcs11-tool prints it
# (-M), from the module and token of $SOFTHSM_MODULE and $TOKEN.
tok_mech_list() {
  ${TOK_RUN:-} pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" -M > "$1" 2>&1 ||
    fail "pkcs11-tool -M: $(cat "$1")"
}

# tok_has_mech LIST NAME FLAG: whether pkcs11-tool's mechanism list LIST
# has mechanism NAME (pkcs11-tool's spelling: ECDSA, RSA-PKCS,
# RSA-PKCS-PSS, RSA-PKCS-OAEP, AES-GCM) with usage FLAG (sign, decrypt,
# encrypt).
tok_has_mech() {
  grep -Eq "^ +$2, (.*, )?$3(,|\$)" "$1"
}

# tok_oaep_hashes PUB.pem ID: the OAEP hashes (sha1 sha256 sha384 sha512)
# with which the token itself decrypts, through pkcs11-tool and not keyd,
# a ciphertext OpenSSL made to the public key PUB (MGF1 of the same hash,
# no label: what keyd asks for). The token's mechanism list names
# CKM_RSA_PKCS_OAEP but not its hashes.
tok_oaep_hashes() {
  local pub=$1 id=$2 h H out=()
  head -c 32 /dev/urandom > "$T/oaep.pt"
  for h in sha1 sha256 sha384 sha512; do
    # pkcs11-tool's names: SHA-1 and SHA256 as hashes, MGF1-SHA1 as MGF.
    H=${h^^}; [[ $H == SHA1 ]] && H=SHA-1
    openssl pkeyutl -encrypt -pubin -inkey "$pub" -pkeyopt rsa_padding_mode:oaep \
      -pkeyopt "rsa_oaep_md:$h" -pkeyopt "rsa_mgf1_md:$h" -in "$T/oaep.pt" -out "$T/oaep.ct"
    rm -f "$T/oaep.out"
    if ${TOK_RUN:-} pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --login \
        --pin "$PIN" --decrypt --id "$id" -m RSA-PKCS-OAEP --hash-algorithm "$H" \
        --mgf "MGF1-${h^^}" -i "$T/oaep.ct" -o "$T/oaep.out" >/dev/null 2>&1 &&
      cmp -s "$T/oaep.pt" "$T/oaep.out"; then
      out+=("$h")
    fi
  done
  echo "${out[*]}"
}

# tok_export_pub ID OUT.pem: the public key as pkcs11-tool reads it from
# the token (lib.sh's export_pub, run where the token's services are seen).
tok_export_pub() {
  ${TOK_RUN:-} pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --read-object \
    --type pubkey --id "$1" -o "$T/pub.der" >/dev/null 2>&1 ||
    fail "pkcs11-tool cannot read the public key $1 from token $TOKEN"
  openssl pkey -pubin -inform DER -in "$T/pub.der" -out "$2"
}

# tok_fail_req MESSAGE: fail, saying too whether keyd is gone, and how it
# ended (a request that fails because keyd died says so).
tok_fail_req() {
  local rc=0
  if [[ -n ${KEYD_PID:-} ]] && ! kill -0 "$KEYD_PID" 2>/dev/null; then
    wait "$KEYD_PID" || rc=$?
    KEYD_PID=
    if ((rc > 128)); then
      fail "$1; keyd is gone: exit status $rc (SIG$(kill -l $((rc - 128))))"
    fi
    fail "$1; keyd is gone: exit status $rc"
  fi
  fail "$1"
}

# tok_sign_all KEY PUB.pem ALG...: keydctl signs with each ALG; OpenSSL
# verifies each signature against PUB (the token's own public key), and
# rejects it for another message.
tok_sign_all() {
  local key=$1 pub=$2 alg; shift 2
  printf 'OPTIONS sip:example.com SIP/2.0\r\n' > "$T/msg"
  printf 'OPTIONS sip:example.org SIP/2.0\r\n' > "$T/msg2"
  for alg in "$@"; do
    rm -f "$T/sig"
    "$KEYDCTL" sign "$key" -a "$alg" -i "$T/msg" -o "$T/sig" 2> "$T/err" ||
      tok_fail_req "sign $key $alg: $(cat "$T/err")"
    verify_sig "$alg" "$pub" "$T/msg" "$T/sig" > /dev/null ||
      fail "sign $key $alg: OpenSSL rejects the signature"
    ! verify_sig "$alg" "$pub" "$T/msg2" "$T/sig" > /dev/null 2>&1 ||
      fail "sign $key $alg: the signature verifies another message"
  done
}

# tok_decrypt_all KEY PUB.pem HASH...: OpenSSL encrypts with RSA-OAEP
# (HASH, MGF1 of the same hash) to PUB; keydctl decrypts.
tok_decrypt_all() {
  local key=$1 pub=$2 h; shift 2
  for h in "$@"; do
    head -c 48 /dev/urandom > "$T/pt"
    openssl pkeyutl -encrypt -pubin -inkey "$pub" -pkeyopt rsa_padding_mode:oaep \
      -pkeyopt "rsa_oaep_md:$h" -pkeyopt "rsa_mgf1_md:$h" -in "$T/pt" -out "$T/ct"
    rm -f "$T/out"
    "$KEYDCTL" decrypt "$key" -a "rsa-oaep-$h" -i "$T/ct" -o "$T/out" 2> "$T/err" ||
      tok_fail_req "decrypt $key rsa-oaep-$h: $(cat "$T/err")"
    cmp -s "$T/pt" "$T/out" || fail "decrypt $key rsa-oaep-$h: the plaintext differs"
  done
}
