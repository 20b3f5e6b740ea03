# srtp_lib.sh: set-up shared by the srtp*.sh tests; sourced after lib.sh.
SRTP_CHECK=$KEYD_BUILD_DIR/tests/srtp_check
SUITES=(AES_CM_128_HMAC_SHA1_80 AES_CM_128_HMAC_SHA1_32
  AES_256_CM_HMAC_SHA1_80 AES_256_CM_HMAC_SHA1_32
  AEAD_AES_128_GCM AEAD_AES_256_GCM)
# The 2^31 blobs keyd makes under one KEK, as status shows it.
SRTP_LIMIT=2147483648

# import_kek LABEL ID: an AES-256 KEK on the token with a value the test
# knows ($T/LABEL.hex), so that blobs can be opened with OpenSSL per
# docs/srtp.md and the KEK version checked against the KEK's own KCV.
import_kek() {
  openssl rand 32 >"$T/$1.bin"
  od -An -tx1 -v "$T/$1.bin" | tr -d ' \n' >"$T/$1.hex"
  p11 --write-object "$T/$1.bin" --type secrkey --key-type AES:32 \
    --label "$1" --id "$2" --sensitive >/dev/null 2>&1
  rm -f "$T/$1.bin"
}

kek_uri() { echo "pkcs11:token=$TOKEN;object=$1;type=secret-key"; }

# kek_name LABEL: kek-xxxxxx, the KEK's check value computed by OpenSSL.
kek_name() { "$SRTP_CHECK" kcv "$(cat "$T/$1.hex")"; }

# srtp_new KEY SUITE [CONTEXT]: keydctl srtp new; sets INLINE and BLOB
# (the whole lines) after checking that exactly those two lines came out.
srtp_new() {
  local out args=(srtp new "$1" -S "$2")
  [[ $# -ge 3 ]] && args+=(-C "$3")
  out=$("$KEYDCTL" "${args[@]}") || fail "keydctl ${args[*]}"
  [[ $(printf '%s\n' "$out" | wc -l) -eq 2 ]] ||
    fail "srtp new printed not two lines: $out"
  INLINE=$(sed -n '1{/^inline:[A-Za-z0-9+/]*=*$/p}' <<<"$out")
  BLOB=$(sed -n '2{/^blob:[A-Za-z0-9+/]*=*$/p}' <<<"$out")
  [[ -n $INLINE && -n $BLOB ]] ||
    fail "srtp new did not print inline:BASE64 and blob:BASE64: $out"
}

# srtp_open KEY BLOB [CONTEXT]: prints keydctl srtp open's output.
srtp_open() {
  local args=(srtp open "$1" "$2")
  [[ $# -ge 3 ]] && args+=(-C "$3")
  "$KEYDCTL" "${args[@]}"
}

# expect_opens KEY BLOB INLINE [CONTEXT]
expect_opens() {
  local got
  got=$(srtp_open "$1" "$2" "${@:4}") || fail "srtp open $1 failed"
  [[ $got == "$3" ]] || fail "srtp open $1 gave '$got', not '$3'"
}
