#!/usr/bin/env bash
# passport_verify.sh: keydctl passport verify against PASSporTs made by an
# independent JWS implementation, PyJWT (Debian's python3-jwt), and
# certificates made by openssl with a TNAuthList (RFC 8226) holding an
# SPC, a TN range in each of its two published encodings, or one TN; one
# certificate expired, one of another key, one without a TNAuthList. It
# accepts good PASSporTs (JWS, Identity header value, on stdin, claims in
# any order) and refuses each bad one with its exact line. No keyd.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

PY=/usr/bin/python3   # Debian's, with python3-jwt
SIGN=$KEYD_SOURCE_DIR/tests/integration/passport_sign.py
"$PY" -c 'import jwt' 2>/dev/null || fail "PyJWT is missing: apt-get install python3-jwt (scripts/deps.sh)"
C=$T/certs
mkdir -p "$C"
X5U=https://cert.example.org/shaken.pem
P="keydctl: passport verify:"

openssl ecparam -name prime256v1 -genkey -noout -out "$C/key.pem"
openssl ecparam -name prime256v1 -genkey -noout -out "$C/key2.pem"

# tnauth NAME ENTRY...: the DER of a TNAuthList, written by openssl
# asn1parse -genconf from ASN1_generate_nconf syntax; ENTRY is a line of
# the list's section, e.g. "e = EXPLICIT:0,IA5STRING:709J".
tnauth() {
  local name=$1; shift
  {
    echo "asn1 = SEQUENCE:list"
    echo "[list]"
    printf '%s\n' "$@"
    echo "[range]"
    echo "start = IA5STRING:12155550100"
    echo "count = INTEGER:100"
  } >"$C/$name.cnf"
  openssl asn1parse -genconf "$C/$name.cnf" -out "$C/$name.der" >/dev/null
  od -An -v -tx1 "$C/$name.der" | tr -d ' \n'
}
# cert NAME KEY [DER-HEX]: a self-signed certificate valid for 30 days,
# with that TNAuthList if given.
cert() {
  local ext=()
  [[ -z ${3:-} ]] || ext=(-addext "1.3.6.1.5.5.7.1.26=DER:$3")
  openssl req -new -x509 -key "$C/$2" -subj "/CN=$1" -days 30 \
    "${ext[@]}" -out "$C/$1.pem"
}
SPC=$(tnauth spc "e = EXPLICIT:0,IA5STRING:709J")
cert spc key.pem "$SPC"
cert other key2.pem "$SPC"
cert none key.pem
# The range as the corrected ASN.1 of RFC 8226's erratum encodes it
# (pyasn1-modules, Botan): [1] around the SEQUENCE.
cert range_seq key.pem "$(tnauth range_seq "e = EXPLICIT:1,SEQUENCE:range")"
# The other published encoding: [1] in place of the SEQUENCE's tag.
cert range_tag key.pem "$(tnauth range_tag "e = IMPLICIT:1,SEQUENCE:range")"
cert one key.pem "$(tnauth one "e = EXPLICIT:2,IA5STRING:12155551212")"
openssl asn1parse -inform DER -in "$C/range_seq.der" | has 'cont \[ 1 \]' ||
  fail "the range certificate has no [1] entry"
cmp -s "$C/range_seq.der" "$C/range_tag.der" && fail "the two range encodings are the same"
# Expired: openssl 3.0's req and x509 take no start date; ca does.
: >"$C/index.txt"
echo 01 >"$C/serial"
cat >"$C/ca.cnf" <<CNF
[ca]
default_ca = c
[c]
database = $C/index.txt
new_certs_dir = $C
serial = $C/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
[x]
1.3.6.1.5.5.7.1.26 = DER:$SPC
CNF
openssl req -new -key "$C/key.pem" -subj /CN=expired -out "$C/expired.csr"
openssl ca -batch -config "$C/ca.cnf" -selfsign -keyfile "$C/key.pem" \
  -extensions x -startdate 20200101000000Z -enddate 20200201000000Z \
  -in "$C/expired.csr" -out "$C/expired.pem" 2>/dev/null
openssl req -new -key "$C/key.pem" -subj /CN=future -out "$C/future.csr"
openssl ca -batch -config "$C/ca.cnf" -selfsign -keyfile "$C/key.pem" \
  -extensions x -startdate 20990101000000Z -enddate 20990201000000Z \
  -in "$C/future.csr" -out "$C/future.pem" 2>/dev/null
openssl x509 -in "$C/expired.pem" -noout -text | has '1.3.6.1.5.5.7.1.26' ||
  fail "the expired certificate has no TNAuthList"

NOW=$(date +%s)
UUID=3a47ccfc-3b4e-4b5a-9c4e-2a5d3f6e8b10
# claims [ORIG [ATTEST [IAT [ORIGID]]]]: shaken claims as JSON.
claims() {
  printf '{"attest":"%s","dest":{"tn":["12155551000"]},"iat":%s,"orig":{"tn":"%s"},"origid":"%s"}' \
    "${2:-A}" "${3:-$NOW}" "${1:-12155550123}" "${4:-$UUID}"
}
# ppt JSON: a PASSporT from PyJWT with the key of key.pem (KEYFILE= for
# another).
ppt() { "$PY" "$SIGN" "${KEYFILE:-$C/key.pem}" "$1"; }
v() { "$KEYDCTL" passport verify "$@"; }

# ---- accepted ----
good=$(ppt "{\"claims\":$(claims)}")
v --cert "$C/spc.pem" "$good" >"$T/out" || fail "a good PASSporT was refused: $(cat "$T/out")"
cat >"$T/want" <<OUT
attest: A
dest: {"tn":["12155551000"]}
iat: $NOW
orig: {"tn":"12155550123"}
origid: $UUID
OUT
diff -u "$T/want" "$T/out" || fail "the claims printed differ"
pass "a good PASSporT, claims printed"
ident="$good;info=<$X5U>;alg=ES256;ppt=shaken"
v --cert "$C/spc.pem" "$ident" >/dev/null || fail "a good Identity header was refused"
printf '%s\n' "$ident" | v --cert "$C/spc.pem" >/dev/null || fail "stdin refused"
# White space around the semicolons (SEMI = SWS ";" SWS), and params in
# another order.
v --cert "$C/spc.pem" "$good ; ppt=shaken ;alg=ES256; info=<$X5U>" >/dev/null ||
  fail "an Identity header with SWS around ';' was refused"
# Claims in another order than keyd's sorted one, and a div PASSporT.
rev='{"origid":"'$UUID'","orig":{"tn":"12155550123"},"iat":'$NOW',"dest":{"tn":["12155551000"]},"attest":"B"}'
v --cert "$C/spc.pem" "$(ppt "{\"claims\":$rev}")" | has -x 'attest: B' ||
  fail "claims in reverse order were refused"
div='{"dest":{"tn":["12155551000"]},"div":{"tn":"12155550150"},"iat":'$NOW',"orig":{"tn":"14155550000"}}'
dj=$(ppt "{\"header\":{\"ppt\":\"div\"},\"claims\":$div}")
v --cert "$C/range_seq.pem" "$dj;info=<$X5U>;alg=ES256;ppt=div" >/dev/null ||
  fail "a div PASSporT was refused"
# A claim with a line feed and an escape comes out as JSON, on one line.
odd='{"attest":"C","dest":{"tn":["12155551000"]},"iat":'$NOW',"orig":{"tn":"12155550123"},"origid":"'$UUID'","x":"a\nb\u001b"}'
v --cert "$C/spc.pem" "$(ppt "{\"claims\":$odd}")" >"$T/out" || fail "a claim x was refused"
[[ $(grep -c . "$T/out") -eq 6 ]] && grep -qxF 'x: "a\nb\u001b"' "$T/out" ||
  fail "a claim with control characters was printed as: $(cat -A "$T/out")"
pass "Identity header, stdin, any claim order, ppt=div"

# ---- refused, each with its line ----
for part in header payload signature; do
  expect_error "$P the signature does not verify with the certificate's key" \
    v --cert "$C/spc.pem" "$(ppt "{\"flip\":\"$part\",\"claims\":$(claims)}")"
done
expect_error "$P the signature does not verify with the certificate's key" \
  v --cert "$C/other.pem" "$good"
pass "a bit flipped in header, payload and signature; another certificate"

old=$(ppt "{\"claims\":$(claims 12155550123 A $((NOW - 100)))}")
expect_error "$P claim iat $((NOW - 100)) is more than 60 s old (--max-age)" \
  v --cert "$C/spc.pem" "$old"
expect_error "$P claim iat $((NOW - 100)) is more than 30 s old (--max-age)" \
  v --cert "$C/spc.pem" --max-age 30 "$old"
v --cert "$C/spc.pem" --max-age 200 "$old" >/dev/null || fail "--max-age 200 refused an iat 100 s old"
fut=$(ppt "{\"claims\":$(claims 12155550123 A $((NOW + 60)))}")
expect_error "$P claim iat $((NOW + 60)) is more than 5 s in the future (check the clocks)" \
  v --cert "$C/spc.pem" "$fut"
pass "iat older than --max-age, iat in the future"

for enc in range_seq range_tag; do
  for tn in 12155550100 12155550199; do
    v --cert "$C/$enc.pem" "$(ppt "{\"claims\":$(claims $tn)}")" >/dev/null ||
      fail "$enc: orig $tn, inside the range, was refused"
  done
  # 012155550150 has the value of a number in the range, and is another
  # number: a range holds numbers of its start's length only.
  for tn in 12155550200 12155550099 2155550150 112155550150 012155550150; do
    expect_error "$P orig $tn is not in the certificate's TNAuthList" \
      v --cert "$C/$enc.pem" "$(ppt "{\"claims\":$(claims $tn)}")"
  done
done
v --cert "$C/one.pem" "$(ppt "{\"claims\":$(claims 12155551212)}")" >/dev/null ||
  fail "the one TN of the certificate was refused"
expect_error "$P orig 12155551213 is not in the certificate's TNAuthList" \
  v --cert "$C/one.pem" "$(ppt "{\"claims\":$(claims 12155551213)}")"
div2=${div/12155550150/12155550250}
expect_error "$P div 12155550250 is not in the certificate's TNAuthList" \
  v --cert "$C/range_tag.pem" "$(ppt "{\"header\":{\"ppt\":\"div\"},\"claims\":$div2}")"
expect_error "$P the certificate has no TNAuthList extension (RFC 8226, 1.3.6.1.5.5.7.1.26)" \
  v --cert "$C/none.pem" "$good"
pass "TNAuthList: a range in both encodings, one TN, div, none"

expect_error "$P the certificate has expired (notAfter is in the past)" \
  v --cert "$C/expired.pem" "$good"
expect_error "$P the certificate is not valid yet (notBefore is in the future)" \
  v --cert "$C/future.pem" "$good"
pass "an expired certificate, one not valid yet"

expect_error "$P header alg is not ES256" \
  v --cert "$C/spc.pem" "$(ppt "{\"es256_whatever_alg\":true,\"header\":{\"alg\":\"ES384\"},\"claims\":$(claims)}")"
# The same way with the right alg verifies: the test above is not broken.
v --cert "$C/spc.pem" "$(ppt "{\"es256_whatever_alg\":true,\"claims\":$(claims)}")" >/dev/null ||
  fail "a PASSporT signed through ECAlgorithm was refused"
# A PASSporT PyJWT signs with ES384, as its header says.
expect_error "$P the signature does not verify with the certificate's key" \
  v --cert "$C/spc.pem" "$(ppt "{\"header\":{\"alg\":\"ES384\"},\"claims\":$(claims)}")"
expect_error "$P header typ is not passport" \
  v --cert "$C/spc.pem" "$(ppt "{\"header\":{\"typ\":\"JWT\"},\"claims\":$(claims)}")"
expect_error "$P header ppt is not shaken or div" \
  v --cert "$C/spc.pem" "$(ppt "{\"header\":{\"ppt\":\"rph\"},\"claims\":$(claims)}")"
expect_error "$P header x5u does not match the Identity header info URL" \
  v --cert "$C/spc.pem" "$good;info=<https://other.example.org/c.pem>;alg=ES256;ppt=shaken"
expect_error "$P Identity header ppt parameter does not match header ppt" \
  v --cert "$C/spc.pem" "$good;info=<$X5U>;alg=ES256;ppt=div"
expect_error "$P Identity header alg parameter is not ES256" \
  v --cert "$C/spc.pem" "$good;info=<$X5U>;alg=RS256;ppt=shaken"
expect_error "$P Identity header info parameter is not <URL>" \
  v --cert "$C/spc.pem" "$good;info=$X5U;alg=ES256;ppt=shaken"
pass "wrong alg, typ, ppt, x5u; Identity header parameters"

expect_error "$P claim orig.tn is not a canonical telephone number (1 to 15 digits): +12155550123" \
  v --cert "$C/spc.pem" "$(ppt "{\"claims\":$(claims +12155550123)}")"
expect_error "$P claim orig.tn is not a canonical telephone number (1 to 15 digits): 1215555012345678" \
  v --cert "$C/spc.pem" "$(ppt "{\"claims\":$(claims 1215555012345678)}")"
bad=$(claims); bad=${bad/\[\"12155551000\"\]/[\"1-215\"]}
expect_error "$P claim dest.tn[0] is not a canonical telephone number (1 to 15 digits)" \
  v --cert "$C/spc.pem" "$(ppt "{\"claims\":$bad}")"
expect_error "$P claim attest is not \"A\", \"B\" or \"C\" (RFC 8588)" \
  v --cert "$C/spc.pem" "$(ppt "{\"claims\":$(claims 12155550123 D)}")"
expect_error "$P claim origid is not a UUID (RFC 8588)" \
  v --cert "$C/spc.pem" "$(ppt "{\"claims\":$(claims 12155550123 A $NOW not-a-uuid)}")"
expect_error "$P claim iat is not an integer" \
  v --cert "$C/spc.pem" "$(ppt "{\"claims\":$(claims 12155550123 A '"'$NOW'"')}")"
pass "malformed TNs and claims"

# Not compact serialization, padding, RFC 8225's compact form.
expect_error "$P a JWS part is not base64url without padding" \
  v --cert "$C/spc.pem" "${good}="
expect_error "$P not a JWS in compact serialization (header.payload.signature)" \
  v --cert "$C/spc.pem" "${good%%.*}..${good##*.}"
expect_error_rc 2 "keydctl: passport verify needs --cert CERT.pem; run keydctl --help" \
  v "$good"
pass "malformed JWS, usage"
