# shaken_lib.sh: shared set-up of the STIR/SHAKEN tests (passport.sh,
# python.sh, tests/e2e/kamailio_shaken.sh), sourced after lib.sh with
# TOKEN set and the token made. shaken_ca makes the CSR of the token's key
# LABEL on the token with openssl and libp11's engine (as at the
# ceremony, docs/ceremonies.md) and a test STI-CA; tnauth and issue make
# TNAuthLists and certificates with openssl.
C=$T/certs
mkdir -p "$C"
: >"$C/index.txt"
echo 01 >"$C/serial"

# shaken_ca LABEL: $C/LABEL.csr and the CA ($C/ca.pem, $C/ca.key).
shaken_ca() {
  PKCS11_MODULE_PATH=$SOFTHSM_MODULE openssl req -new -engine pkcs11 -keyform engine \
    -key "pkcs11:token=$TOKEN;object=$1;type=private;pin-value=$PIN" \
    -subj "/CN=SHAKEN $1" -out "$C/$1.csr" >/dev/null 2>"$T/err" ||
    { cat "$T/err" >&2; fail "openssl req with the pkcs11 engine ($1)"; }
  [[ -f $C/ca.pem ]] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$C/ca.key"
  openssl req -new -x509 -key "$C/ca.key" -subj "/CN=Test STI-CA" -days 30 -out "$C/ca.pem"
}

# tnauth NAME ENTRY: the hex DER of a TNAuthList with that entry, written
# by openssl asn1parse -genconf (as in passport_verify.sh); a [range] is
# 100 TNs from 12155550100.
tnauth() {
  printf '%s\n' "asn1 = SEQUENCE:list" "[list]" "$2" "[range]" \
    "start = IA5STRING:12155550100" "count = INTEGER:100" >"$C/$1.cnf"
  openssl asn1parse -genconf "$C/$1.cnf" -out "$C/$1.der" >/dev/null
  od -An -v -tx1 "$C/$1.der" | tr -d ' \n'
}

# issue NAME TNAUTH-HEX START END CSR: $C/NAME.pem from the CA.
issue() {
  cat >"$C/$1.ca.cnf" <<CNF
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
1.3.6.1.5.5.7.1.26 = DER:$2
CNF
  openssl ca -batch -config "$C/$1.ca.cnf" -cert "$C/ca.pem" -keyfile "$C/ca.key" \
    -extensions x -startdate "$3" -enddate "$4" -in "$5" \
    -out "$C/$1.pem" 2>"$T/err" >/dev/null || { cat "$T/err" >&2; fail "openssl ca $1"; }
  openssl x509 -in "$C/$1.pem" -out "$C/$1.pem"   # the PEM alone
}
