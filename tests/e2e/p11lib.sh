# p11lib.sh: set-up shared by the keyd-pkcs11.so end-to-end tests; sources
# the integration tests' lib.sh (a SoftHSM2 token in a temporary
# directory, keys made by pkcs11-tool, keyd started on it).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

MODULE=$KEYD_BUILD_DIR/client/pkcs11/keyd-pkcs11.so
P11DRIVE=$KEYD_BUILD_DIR/tests/p11drive
TOKEN=sbc
# The label keyd-pkcs11.so shows, set in its config file below.
P11LABEL=keyd
# libp11's OpenSSL engine (Debian: libengine-pkcs11-openssl).
ENGINE=$(dpkg -L libengine-pkcs11-openssl 2>/dev/null | grep '/engines-3/pkcs11\.so$' | head -n1 || true)
: "${ENGINE:=/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so}"

[[ -f $MODULE ]] || fail "$MODULE is not built (target keyd-pkcs11)"

# A module built with the sanitizers needs their runtime loaded first in
# programs that were not (openssl, pkcs11-tool, p11tool); leaks in those
# programs are not ours to report.
EXT=()
if [[ -n ${KEYD_P11_PRELOAD:-} ]]; then
  EXT=(env "LD_PRELOAD=$KEYD_P11_PRELOAD" "ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0")
fi
ext() { "${EXT[@]}" "$@"; }

# p11_keys: the keys every e2e test uses, on a fresh token:
#   sip-tls  EC P-256, id 01     sip-rsa  RSA-2048, id 02 (sign, decrypt)
#   sip-ed   Ed25519, id 03      sign-only-rsa  RSA-2048, id 05 (sign)
#   srtp-kek AES-256, id 10 (an SRTP KEK: no PKCS#11 object)
# and their public keys as the token itself gives them ($T/ec.pem,
# $T/rsa.pem, $T/ed.pem).
p11_keys() {
  make_token "$TOKEN"
  keygen EC:prime256v1 sip-tls 01
  keygen rsa:2048 sip-rsa 02
  keygen EC:edwards25519 sip-ed 03
  keygen rsa:2048 sign-only-rsa 05
  keygen AES:32 srtp-kek 10
  export_pub 01 "$T/ec.pem"
  export_pub 02 "$T/rsa.pem"
  export_pub_gnutls sip-ed "$T/ed.pem"
  write_pin
  # keyd's seccomp filter does not allow the sanitizers' exit path: with
  # them (KEYD_P11_PRELOAD), these tests are about the module, not keyd.
  local sandbox=yes
  [[ -n ${KEYD_P11_PRELOAD:-} ]] && sandbox=no
  write_config <<CONF
state_dir = $T/state
sandbox = $sandbox

[key sip-tls]
uri = pkcs11:token=$TOKEN;object=sip-tls;type=private
ops = sign

[key sip-rsa]
uri = pkcs11:token=$TOKEN;object=sip-rsa;type=private
ops = sign, decrypt

[key sip-ed]
uri = pkcs11:token=$TOKEN;object=sip-ed;type=private
ops = sign

[key sign-only-rsa]
uri = pkcs11:token=$TOKEN;object=sign-only-rsa;type=private
ops = sign

[key srtp-kek]
uri = pkcs11:token=$TOKEN;object=srtp-kek;type=secret-key
ops = srtp-new, srtp-open

[client root]
uid = 0
keys = sip-tls, sip-rsa, sip-ed, sign-only-rsa, srtp-kek
ops = sign, decrypt, srtp-new, srtp-open
CONF
  mkdir -p "$T/state"
  # The module's own config: where keyd is, and the token's label.
  printf 'socket = %s\ntoken_label = %s\n' "$KEYD_SOCKET" "$P11LABEL" \
    > "$T/pkcs11.conf"
  export KEYD_PKCS11_CONF=$T/pkcs11.conf
  export KEYD_PKCS11_DEBUG=1
}

# p11_engine_conf: $T/openssl.cnf, an OpenSSL config that loads libp11's
# engine with keyd-pkcs11.so as its module. Pass it as OPENSSL_CONF to the
# commands that use the engine only.
p11_engine_conf() {
  [[ -f $ENGINE ]] || fail "libp11's engine $ENGINE is missing (libengine-pkcs11-openssl)"
  cat > "$T/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE
MODULE_PATH = $MODULE
init = 0
[req]
distinguished_name = dn
[dn]
CNF
}

# keyd_provider_cnf FILE: the OpenSSL config that loads keyd.so beside the
# default provider, as docs/provider.md gives it ($PROVDIR: where keyd.so
# is); the [req] section lets openssl req run without a system openssl.cnf.
keyd_provider_cnf() {
  cat > "$1" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
keyd = keyd_sect
[default_sect]
activate = 1
[keyd_sect]
module = $PROVDIR/keyd.so
activate = 1
[req]
distinguished_name = dn
[dn]
CNF
}

# with_engine SECONDS CMD...: CMD, stopped after SECONDS, with the
# engine's config and Ed25519 hidden (libp11 0.4.12 finds no keys at all
# on a token that shows one).
with_engine() {
  local secs=$1; shift
  timeout "$secs" "${EXT[@]}" env OPENSSL_CONF="$T/openssl.cnf" \
    KEYD_PKCS11_HIDE_ED25519=1 "$@"
}

# p11_ca: a test CA in files ($T/ca.key, $T/ca.pem).
p11_ca() {
  openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -subj /CN=keyd-test-ca \
    -days 2 >/dev/null 2>&1 || fail "cannot make the test CA"
}

# p11_cert KEY OUT.pem: a certificate for the token key KEY, CN=localhost,
# issued by the test CA; its request is signed through libp11's engine and
# keyd-pkcs11.so (proof of possession by keyd's key).
p11_cert() {
  with_engine 30 openssl req -new -engine pkcs11 -keyform engine \
    -key "pkcs11:token=$P11LABEL;object=$1;type=private" \
    -subj /CN=localhost -out "$T/$1.csr" >"$T/req.log" 2>&1 ||
    { cat "$T/req.log" >&2; fail "openssl req through keyd-pkcs11.so for $1"; }
  openssl req -in "$T/$1.csr" -noout -verify >/dev/null 2>&1 ||
    fail "the request signed through keyd-pkcs11.so does not verify"
  printf 'subjectAltName = DNS:localhost\n' > "$T/ext.cnf"
  openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
    -CAcreateserial -days 2 -extfile "$T/ext.cnf" -out "$2" >/dev/null 2>&1 ||
    fail "the CA cannot sign the request for $1"
}

# p11_import_cert PEM ID LABEL: the certificate as a token object beside
# the key (keyd finds it by CKA_ID when it starts).
p11_import_cert() {
  openssl x509 -in "$1" -outform DER -out "$T/$3.der"
  p11 --write-object "$T/$3.der" --type cert --id "$2" --label "$3" \
    >/dev/null 2>&1 || fail "pkcs11-tool cannot import the certificate"
}
