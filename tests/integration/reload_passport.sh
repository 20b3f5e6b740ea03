#!/usr/bin/env bash
# reload_passport.sh: a passport key's certificate and x5u change by
# reload. The supervisor reads the certificate file (the socket-facing
# process's sandbox does not reach its directory); PASSporTs signed after
# the reload name the new x5u and verify against the new certificate; a
# certificate for another key refuses the reload with the reason.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

TOKEN=shaken
make_token $TOKEN
keygen EC:prime256v1 shaken 10
keygen EC:prime256v1 other 11
write_pin
source "$KEYD_SOURCE_DIR/tests/integration/shaken_lib.sh"
shaken_ca shaken
shaken_ca other
FROM=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
TO=$(date -u -d '+30 days -1 hour' +%Y%m%d%H%M%SZ)
SPC=$(tnauth spc "e = EXPLICIT:0,IA5STRING:709J")
issue one "$SPC" "$FROM" "$TO" "$C/shaken.csr"
issue two "$SPC" "$FROM" "$TO" "$C/shaken.csr"
issue wrong "$SPC" "$FROM" "$TO" "$C/other.csr"
conf() { # CERT X5U
  write_config <<CONF
[key shaken]
uri = pkcs11:token=$TOKEN;object=shaken;type=private
ops = passport
x5u = $2
certificate = $C/$1.pem
[client sbc]
uid = 0
keys = shaken
ops = passport, reload
attest_max = A
orig_tns = 1215555*
CONF
}
# passport_ok CERT X5U: a PASSporT that names X5U and verifies against CERT.
passport_ok() {
  local id
  id=$("$KEYDCTL" passport shaken --attest A --orig 12155550123 --dest 13125550100) ||
    fail "passport refused"
  [[ $id == *";info=<$2>;alg=ES256;ppt=shaken" ]] || fail "the Identity header: $id"
  "$KEYDCTL" passport verify --cert "$C/$1.pem" "$id" > /dev/null ||
    fail "the PASSporT does not verify against $1"
}

conf one https://cert.example.org/one.pem
start_keyd
passport_ok one https://cert.example.org/one.pem
conf two https://cert.example.org/two.pem
"$KEYDCTL" reload > "$T/rl.out" || fail "the new certificate was refused"
grep -q "keys ~shaken" "$T/rl.out" || fail "reload said $(cat "$T/rl.out")"
passport_ok two https://cert.example.org/two.pem
pass "a new certificate and x5u apply on reload"
conf wrong https://cert.example.org/wrong.pem
expect_fail "keydctl: reload: refused: .key shaken.: the certificate's public key is not the key's" \
  "$KEYDCTL" reload
passport_ok two https://cert.example.org/two.pem
pass "a certificate for another key is refused; the running one serves on"
stop_keyd
