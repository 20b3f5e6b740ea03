#!/usr/bin/env bash
# passport.sh: keyd's passport op (docs/shaken.md). The SHAKEN key is made
# on a SoftHSM2 token; its CSR is made there by openssl with libp11's
# engine, as at the ceremony; a test STI-CA made by openssl signs
# certificates for it with a TNAuthList (RFC 8226) holding an SPC, a TN
# range in each of its two published encodings, and one expired. Every
# PASSporT keyd makes is verified by an independent JWS implementation,
# PyJWT (Debian's python3-jwt), against the certificate, with its header
# and claims exactly what was asked for and its JSON deterministic; and by
# keydctl passport verify, which refuses it altered. Each policy refusal
# is checked by its exact line and in the audit log; each start-up
# refusal by its error line. Needs root: a second client runs as nobody.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
need_root

PY=/usr/bin/python3   # Debian's, with python3-jwt
CHECK=$KEYD_SOURCE_DIR/tests/integration/passport_check.py
"$PY" -c 'import jwt' 2>/dev/null || fail "PyJWT is missing: apt-get install python3-jwt (scripts/deps.sh)"
X5U=https://cert.example.org/shaken.pem
nobody=65534
install -m 0755 "$KEYDCTL" "$T/keydctl"
as_nobody() { setpriv --reuid=$nobody --regid=$nobody --clear-groups "$T/keydctl" "$@"; }

TOKEN=shaken
make_token $TOKEN
keygen EC:prime256v1 shaken 10
keygen EC:prime256v1 other 11
keygen EC:secp384r1 p384 12
URI="pkcs11:token=$TOKEN;object=shaken;type=private"

# The CSR, made on the token, and a test STI-CA (shaken_lib.sh).
source "$KEYD_SOURCE_DIR/tests/integration/shaken_lib.sh"
shaken_ca shaken
FROM=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
TO=$(date -u -d '+30 days -1 hour' +%Y%m%d%H%M%SZ)
SPC=$(tnauth spc "e = EXPLICIT:0,IA5STRING:709J")
issue spc "$SPC" "$FROM" "$TO" "$C/shaken.csr"
# The range as the corrected ASN.1 of RFC 8226's erratum has it ([1]
# around the SEQUENCE), and as the RFC's ([1] in place of its tag).
issue seq "$(tnauth seq "e = EXPLICIT:1,SEQUENCE:range")" "$FROM" "$TO" "$C/shaken.csr"
issue tag "$(tnauth tag "e = IMPLICIT:1,SEQUENCE:range")" "$FROM" "$TO" "$C/shaken.csr"
cmp -s "$C/seq.der" "$C/tag.der" && fail "the two range encodings are the same"
issue expired "$SPC" 20200101000000Z 20200201000000Z "$C/shaken.csr"
# Soon to expire: status warns.
issue soon "$SPC" "$FROM" "$(date -u -d '+3 days -1 hour' +%Y%m%d%H%M%SZ)" "$C/shaken.csr"
cat "$C/spc.pem" "$C/ca.pem" >"$C/spc-chain.pem"
# The token's own certificate object for the key (same CKA_ID).
openssl x509 -in "$C/seq.pem" -outform DER -out "$C/seq.der.crt"
p11 --write-object "$C/seq.der.crt" --type cert --id 10 --label shaken >/dev/null
# A certificate of another key.
shaken_ca other
issue other "$SPC" "$FROM" "$TO" "$C/other.csr"

write_pin
write_config <<CONF
socket_group = $nobody
[key spc]
uri = $URI
ops = passport
x5u = $X5U
certificate = $C/spc-chain.pem
[key seq]
uri = $URI
ops = passport
x5u = $X5U
certificate = $C/seq.pem
[key tag]
uri = $URI
ops = passport
x5u = $X5U
certificate = $C/tag.pem
[key expired]
uri = $URI
ops = passport
x5u = $X5U
certificate = $C/expired.pem
[key soon]
uri = $URI
ops = passport
x5u = $X5U
certificate = $C/soon.pem
[key tok]
uri = $URI
ops = passport
x5u = https://cert.example.org/tok.pem
[key plain]
uri = pkcs11:token=$TOKEN;object=other;type=private
ops = sign
[client sbc]
uid = 0
keys = spc, seq, tag, expired, soon, tok, plain
ops = passport, sign, status
attest_max = A
orig_tns = 1215555*, 12025550100-12025550199, 14155550000
[client gw]
uid = $nobody
keys = spc
ops = passport
attest_max = B
orig_tns = 1215555*
CONF
cp -p "$T/keyd.conf" "$T/good.conf"
start_keyd
grep -q "start-up: THE CERTIFICATE OF PASSPORT KEY 'expired' HAS EXPIRED" "$T/keyd.log" ||
  fail "no start-up warning about the expired certificate: $(cat "$T/keyd.log")"
grep -q "start-up: the certificate of passport key 'soon' expires in 2 days: renew it" "$T/keyd.log" ||
  fail "no start-up warning about the certificate that expires soon"
pass "keyd starts with an expired certificate, and warns"

P=(passport)
H='{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"'$X5U'"}'
UUID=3a47ccfc-3b4e-4b5a-9c4e-2a5d3f6e8b10
# check CERT VALUE WANT-CLAIMS [HEADER [TAIL]]: PyJWT's verdict.
check() {
  local want
  want='{"header":'${4:-$H}',"claims":'$3',"identity_tail":"'${5:-;info=<$X5U>;alg=ES256;ppt=shaken}'"}'
  "$PY" "$CHECK" "$C/$1.pem" "$2" "$want" >"$T/claims" 2>"$T/err" ||
    fail "PyJWT: $(cat "$T/err") in $2"
}

# ---- PASSporTs keyd makes, checked by PyJWT ----
# Separators and a '+' are dropped (RFC 8224 section 8.3); an upper-case
# origid comes out in lower case.
id=$("$KEYDCTL" passport spc --attest A --orig '+1 (215) 555-0123' \
  --dest 12155551000 --dest +1-215-555.1001 --origid "${UUID^^}") ||
  fail "passport: $(cat "$T/err" 2>/dev/null)"
[[ $(wc -l <<<"$id") -eq 1 ]] || fail "the Identity header is not one line"
check spc "$id" '{"attest":"A","dest":{"tn":["12155551000","12155551001"]},"orig":{"tn":"12155550123"},"origid":"'$UUID'"}'
IAT=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["iat"])' "$(cat "$T/claims")")
[[ $id == *";info=<$X5U>;alg=ES256;ppt=shaken" ]] || fail "Identity header: $id"
jws=$("$KEYDCTL" passport spc --attest B --orig 12155550124 --dest 12155551000 --jws) ||
  fail "passport --jws"
[[ $jws =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$ ]] || fail "--jws printed: $jws"
check spc "$jws" '{"attest":"B","dest":{"tn":["12155551000"]},"orig":{"tn":"12155550124"},"origid":"*"}'
# The token's certificate object serves key tok.
tid=$("$KEYDCTL" passport tok --attest A --orig 12155550150 --dest 12155551000) || fail "passport tok"
check seq "$tid" '{"attest":"A","dest":{"tn":["12155551000"]},"orig":{"tn":"12155550150"},"origid":"*"}' \
  '{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://cert.example.org/tok.pem"}' \
  ";info=<https://cert.example.org/tok.pem>;alg=ES256;ppt=shaken"
# A diversion PASSporT: div is the number vouched for, inside the range.
did=$("$KEYDCTL" passport tag --div 12155550199 --orig 14085550000 --dest 12155551000) ||
  fail "passport --div"
check tag "$did" '{"dest":{"tn":["12155551000"]},"div":{"tn":"12155550199"},"orig":{"tn":"14085550000"}}' \
  '{"alg":"ES256","ppt":"div","typ":"passport","x5u":"'$X5U'"}' ";info=<$X5U>;alg=ES256;ppt=div"
# Sixteen destinations, the most.
dests=(); for i in $(seq 10 25); do dests+=(--dest "121555510$i"); done
many=$("$KEYDCTL" passport spc --attest C --orig 19995550000 "${dests[@]}" --jws) || fail "16 dest"
check spc "$many" '{"attest":"C","dest":{"tn":['"$(seq -s, -f '"121555510%g"' 10 25)"']},"orig":{"tn":"19995550000"},"origid":"*"}'
pass "PyJWT verifies keyd's PASSporTs: shaken, div, the token's certificate, 16 dest; deterministic JSON"

# ---- keydctl passport verify: keyd's output, and altered ----
"$KEYDCTL" passport verify --cert "$C/spc.pem" "$id" >"$T/out" || fail "verify refused keyd's PASSporT"
cat >"$T/want" <<OUT
attest: A
dest: {"tn":["12155551000","12155551001"]}
iat: $IAT
orig: {"tn":"12155550123"}
origid: $UUID
OUT
diff -u "$T/want" "$T/out" || fail "verify printed other claims"
"$KEYDCTL" passport verify --cert "$C/tag.pem" "$did" >/dev/null || fail "verify refused the div PASSporT"
V="keydctl: passport verify:"
B64=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_
# flip PART: jws with one bit flipped in a middle character of part PART
# (0 header, 1 payload, 2 signature), still canonical base64url.
flip() {
  local IFS=. p
  read -ra p <<<"$jws"
  local s=${p[$1]} k=$(( ${#p[$1]} / 2 ))
  local c=${s:k:1} i=${B64%%"${s:k:1}"*}
  i=${#i}
  p[$1]=${s:0:k}${B64:$((i ^ 1)):1}${s:k+1}
  echo "${p[*]}"
}
for part in 0 1 2; do
  bad=$(flip $part)
  [[ $bad != "$jws" ]] || fail "flip $part changed nothing"
  rc=0; "$KEYDCTL" passport verify --cert "$C/spc.pem" "$bad" >/dev/null 2>"$T/err" || rc=$?
  [[ $rc -eq 1 ]] || fail "verify took a PASSporT with part $part altered"
done
expect_error "$V the signature does not verify with the certificate's key" \
  "$KEYDCTL" passport verify --cert "$C/spc.pem" "$(flip 2)"
expect_error "$V the signature does not verify with the certificate's key" \
  "$KEYDCTL" passport verify --cert "$C/other.pem" "$jws"
sleep 2
JIAT=$("$KEYDCTL" passport verify --cert "$C/spc.pem" "$jws" | sed -n 's/^iat: //p')
expect_error "$V claim iat $JIAT is more than 1 s old (--max-age)" \
  "$KEYDCTL" passport verify --cert "$C/spc.pem" --max-age 1 "$jws"
pass "passport verify accepts keyd's output, refuses a bit flipped in each part, another certificate, an old iat"

# ---- policy refusals, each with its line, none printing a PASSporT ----
D="permission denied by policy"
expect_error "keydctl: passport spc: $D: attest_max: client 'gw' may attest at most B, not A" \
  as_nobody passport spc --attest A --orig 12155550123 --dest 12155551000
as_nobody passport spc --attest B --orig 12155550123 --dest 12155551000 >/dev/null ||
  fail "gw cannot attest B for its own number"
for a in A B; do
  expect_error "keydctl: passport spc: $D: orig_tns: orig is not among the numbers of client 'sbc' (attestation $a needs one of them; C takes any)" \
    "$KEYDCTL" passport spc --attest $a --orig 13125550000 --dest 12155551000
done
cid=$("$KEYDCTL" passport spc --attest C --orig 13125550000 --dest 12155551000) ||
  fail "attestation C for a number outside the client's was refused"
check spc "$cid" '{"attest":"C","dest":{"tn":["12155551000"]},"orig":{"tn":"13125550000"},"origid":"*"}'
expect_error "keydctl: passport spc: $D: orig_tns: orig is not among the numbers of client 'gw' (attestation B needs one of them; C takes any)" \
  as_nobody passport spc --attest B --orig 12025550150 --dest 12155551000
pass "attest_max; orig_tns at A and B, any orig at C"

# The certificate's TN range, in both encodings, at every attestation.
for k in seq tag; do
  for tn in 12155550100 12155550199; do
    "$KEYDCTL" passport $k --attest A --orig $tn --dest 12155551000 >/dev/null ||
      fail "$k: orig $tn inside the certificate's range was refused"
  done
  for a in A B C; do
    expect_error "keydctl: passport $k: $D: tnauthlist: orig is not in the TNAuthList of the certificate of key '$k'" \
      "$KEYDCTL" passport $k --attest $a --orig 12155550200 --dest 12155551000
  done
done
expect_error "keydctl: passport seq: $D: tnauthlist: the div TN is not in the TNAuthList of the certificate of key 'seq'" \
  "$KEYDCTL" passport seq --div 12155550099 --orig 14085550000 --dest 12155551000
expect_error "keydctl: passport spc: $D: orig_tns: the div TN is not among the numbers of client 'sbc'" \
  "$KEYDCTL" passport spc --div 13125550000 --orig 14085550000 --dest 12155551000
pass "the certificate's TNAuthList range (both encodings) at A, B and C, and for div"

expect_error "keydctl: passport expired: the key's certificate has expired or is not valid yet: certificate: the certificate of key 'expired' expired at 2020-02-01 00:00:00 UTC (notAfter); install a new one" \
  "$KEYDCTL" passport expired --attest C --orig 12155550123 --dest 12155551000
expect_error "keydctl: passport plain: $D: key 'plain' is not for passport" \
  "$KEYDCTL" passport plain --attest C --orig 12155550123 --dest 12155551000
I="invalid argument"
TNERR="is not a telephone number: E.164, 1 to 15 digits after dropping a leading '+' and the separators - . ( ) and space"
expect_error "keydctl: passport spc: $I: orig $TNERR" \
  "$KEYDCTL" passport spc --attest A --orig 1215555O123 --dest 12155551000
expect_error "keydctl: passport spc: $I: orig $TNERR" \
  "$KEYDCTL" passport spc --attest A --orig 1215555012345678 --dest 12155551000
expect_error "keydctl: passport spc: $I: dest[1] $TNERR" \
  "$KEYDCTL" passport spc --attest A --orig 12155550123 --dest 12155551000 --dest +
expect_error "keydctl: passport spc: $I: origid is not a UUID (8-4-4-4-12 hexadecimal digits, RFC 8588)" \
  "$KEYDCTL" passport spc --attest A --orig 12155550123 --dest 12155551000 --origid 3a47ccfc-3b4e-4b5a-9c4e-2a5d3f6e8b1g
expect_error "keydctl: passport spc: $I: attest must be A, B or C (RFC 8588)" \
  "$KEYDCTL" passport spc --attest D --orig 12155550123 --dest 12155551000
# A sign client cannot use the passport key's other copy: there is none.
expect_error "keydctl: sign spc: $D: key 'spc' is not for sign" \
  "$KEYDCTL" sign spc -a ecdsa-sha256 -i /etc/hostname
pass "an expired certificate, a key without passport, malformed TNs, origid and attest"

# ---- the audit log ----
A=$T/audit.jsonl
grep -F '"op":"passport","key":"spc","mech":"es256","result":"ok"' "$A" |
  has -F '"ppt":"shaken","attest":"A","orig":"12155550123","dest":["12155551000","12155551001"],"origid":"'$UUID'"' ||
  fail "no audit line with the PASSporT's claims: $(grep passport "$A" | head -3)"
grep -F '"op":"passport","key":"tag"' "$A" | has -F '"ppt":"div","orig":"14085550000","div":"12155550199","dest":["12155551000"]' ||
  fail "no audit line with the div PASSporT's claims"
grep -F '"client":"gw"' "$A" | has -F '"detail":"attest_max: client '"'gw'"' may attest at most B, not A","ppt":"shaken","attest":"A","orig":"12155550123"' ||
  fail "the attest_max refusal is not audited with its rule"
grep -qF '"detail":"certificate: the certificate of key '"'expired'"' expired at 2020-02-01 00:00:00 UTC (notAfter); install a new one"' "$A" ||
  fail "the expired certificate's refusal is not audited"
pass "audit lines carry ppt, attest, orig, div, dest, origid, and each refusal's rule"

# ---- status and Prometheus: days left ----
"$KEYDCTL" status >"$T/status" || fail "status"
grep -q "^key spc: passport .*; certificate expires in 29 days$" "$T/status" ||
  fail "status: $(grep '^key spc' "$T/status")"
grep -q "^key expired: .*; certificate expires in -2.* days; WARNING: the certificate has expired: passport requests fail$" "$T/status" ||
  fail "status: $(grep '^key expired' "$T/status")"
grep -q "^key soon: .*; certificate expires in 2 days; WARNING: the certificate expires in 2 days$" "$T/status" ||
  fail "status: $(grep '^key soon' "$T/status")"
"$KEYDCTL" status --prometheus >"$T/prom" || fail "status --prometheus"
grep -qx 'keyd_cert_expiry_days{key="spc"} 29' "$T/prom" || fail "prometheus: $(grep cert_expiry "$T/prom")"
grep -qx 'keyd_cert_expiry_days{key="soon"} 2' "$T/prom" || fail "prometheus soon"
grep -q '^keyd_key_ops_total{key="spc",op="passport",result="ok"} [1-9]' "$T/prom" || fail "prometheus passport counter"
pass "status and Prometheus show the days left, and warn"

# keyd-pkcs11.so shows the sign key, never a passport key (a sanitizer
# build's module needs the ASan runtime in pkcs11-tool).
printf 'socket = %s\ntoken_label = keyd\n' "$T/run/keyd.sock" >"$T/pkcs11.conf"
P11ENV=(env KEYD_PKCS11_CONF="$T/pkcs11.conf")
[[ -z ${KEYD_P11_PRELOAD:-} ]] ||
  P11ENV+=(LD_PRELOAD="$KEYD_P11_PRELOAD" ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0)
"${P11ENV[@]}" pkcs11-tool --module "$KEYD_BUILD_DIR/client/pkcs11/keyd-pkcs11.so" -O \
  >"$T/p11objs" 2>&1 || fail "pkcs11-tool -O through keyd-pkcs11.so: $(cat "$T/p11objs")"
grep -q "label: *plain$" "$T/p11objs" || fail "keyd-pkcs11.so does not show the sign key: $(cat "$T/p11objs")"
! grep -qE "label: *(spc|seq|tag|expired|soon|tok)$" "$T/p11objs" ||
  fail "keyd-pkcs11.so shows a passport key: $(cat "$T/p11objs")"
pass "keyd-pkcs11.so lists no passport key"
stop_keyd

# ---- audit_tn = hmac: TNs in the audit log as HMAC-SHA256 on the token ----
p11 --keygen --key-type GENERIC:32 --label tnkey --id 20 --sensitive >/dev/null 2>&1
# hmac TN: the HMAC as pkcs11-tool has the token make it, independently.
hmac() {
  printf %s "$1" >"$T/tn"
  p11 --sign -m SHA256-HMAC --id 20 -i "$T/tn" -o "$T/tn.mac" >/dev/null 2>&1 || fail "pkcs11-tool HMAC"
  od -An -v -tx1 "$T/tn.mac" | tr -d ' \n'
}
sed -e "s|^audit_log = .*|audit_log = $T/audit-hmac.jsonl|" \
  -e "s|^socket_group = .*|&\naudit_tn = hmac\naudit_tn_key = pkcs11:token=$TOKEN;object=tnkey;type=secret-key|" \
  "$T/good.conf" >"$T/keyd.conf"
start_keyd
"$KEYDCTL" passport spc --attest A --orig +12155550123 --dest 12155551000 --dest 12155551001 \
  --origid $UUID >/dev/null || fail "passport with audit_tn = hmac"
expect_error "keydctl: passport spc: $D: attest_max: client 'gw' may attest at most B, not A" \
  as_nobody passport spc --attest A --orig 12155550777 --dest 12155551000
"$KEYDCTL" passport seq --div 12155550150 --orig 14085550000 --dest 12155551000 >/dev/null ||
  fail "div with audit_tn = hmac"
stop_keyd
AH=$T/audit-hmac.jsonl
grep -F '"op":"passport","key":"spc","mech":"es256","result":"ok"' "$AH" |
  has -F '"ppt":"shaken","attest":"A","orig":"'$(hmac 12155550123)'","dest":["'$(hmac 12155551000)'","'$(hmac 12155551001)'"],"origid":"'$UUID'"' ||
  fail "the audit line does not hold the TNs' HMACs: $(grep '"passport"' "$AH" | head -1)"
grep -F '"client":"gw"' "$AH" | has -F '"orig":"'$(hmac 12155550777)'"' || fail "the refusal's orig is not an HMAC"
grep -F '"key":"seq"' "$AH" | has -F '"orig":"'$(hmac 14085550000)'","div":"'$(hmac 12155550150)'"' ||
  fail "the div PASSporT's TNs are not HMACs"
! grep -qE '1215555|1408555' "$AH" || fail "a TN is in the clear in the audit log: $(grep -E '1215555|1408555' "$AH" | head -2)"
pass "audit_tn = hmac: orig, div and dest as HMAC-SHA256 under the token's key, none in the clear"

# ---- start-up refusals ----
CF=$T/keyd.conf
check_fails() {
  local rc=0
  "$KEYD" -c "$CF" --check-config >"$T/out" 2>"$T/err" || rc=$?
  [[ $rc -ne 0 ]] || fail "--check-config passed; want: $1"
  grep -qxF "keyd: error: $1" "$T/err" || fail "said:
  $(grep error "$T/err")
want:
  keyd: error: $1"
}
conf() { { cat "$T/good.conf"; cat; } >"$CF"; chmod 0600 "$CF"; }
conf <<CONF
[key both]
uri = $URI
ops = passport, sign
x5u = $X5U
CONF
check_fails "$CF:$(grep -n '^\[key both\]' "$CF" | cut -d: -f1): [key both] has passport and other ops; a passport key serves only passport (with sign, a client could make any PASSporT it likes)"
conf <<CONF
[key copy]
uri = pkcs11:token=$TOKEN;id=%10;type=private
ops = sign
CONF
check_fails "[key copy] has the same public key as passport key 'spc' and other ops than passport; the SHAKEN key must serve passport only (with sign, a client could make any PASSporT it likes)"
sed "s|certificate = $C/spc-chain.pem|certificate = $C/other.pem|" "$T/good.conf" >"$CF"
check_fails "[key spc]: the certificate's public key is not the key's ($C/other.pem)"
conf <<CONF
[key big]
uri = pkcs11:token=$TOKEN;object=p384;type=private
ops = passport
x5u = $X5U
certificate = $C/spc.pem
CONF
check_fails "key 'big' (pkcs11:token=$TOKEN;object=p384;type=private) has ops = passport, but a PASSporT is signed with ES256: the key must be EC P-256"
sed "s|^attest_max = B$||" "$T/good.conf" >"$CF"
check_fails "$CF:$(grep -n '^\[client gw\]' "$CF" | cut -d: -f1): [client gw] has the passport op but no attest_max (A, B or C: the highest attestation it may assert)"
conf <<CONF
[key nocert]
uri = pkcs11:token=$TOKEN;object=other;type=private
ops = passport
x5u = $X5U
CONF
check_fails "[key nocert] has ops = passport but no certificate: set certificate = FILE (PEM, leaf first), or put the certificate on the token with the key's CKA_ID"
sed -e "s|^socket_group = .*|&\naudit_tn = hmac|" "$T/good.conf" >"$CF"
check_fails "$CF: audit_tn = hmac needs audit_tn_key (the PKCS#11 URI of a secret key on the token for HMAC-SHA256)"
conf <<CONF
[key tn]
uri = pkcs11:token=$TOKEN;object=tnkey;type=secret-key
ops = sign
CONF
check_fails "key 'tn' (pkcs11:token=$TOKEN;object=tnkey;type=secret-key) is an HMAC secret key: keyd serves no op with one (it can be audit_tn_key)"
pass "start-up refuses passport with another op, the same key pair with sign, another key's certificate, P-384, no attest_max, no certificate; audit_tn = hmac without its key, an HMAC key for a client"
