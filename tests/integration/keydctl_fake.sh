#!/usr/bin/env bash
# keydctl_fake.sh: keydctl end to end against fake_server, which signs and
# decrypts with real keys through OpenSSL. Checks that keydctl hashes
# what it should, maps each -a ALG to the right protocol algorithm, and
# writes signatures that openssl verifies against the key's public key;
# that decrypt output is private (0600); and that every failure is one
# line on stderr and a non-zero exit.
set -euo pipefail

build=${KEYD_BUILD_DIR:?KEYD_BUILD_DIR must name the build directory}
keydctl=$build/client/keydctl
fake=$build/tests/fake_server
for f in "$keydctl" "$fake"; do
  [[ -x $f ]] || { echo "FAIL: $f is not built"; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
umask 022
# The fakes run as this user; trust it if that is not root.
export KEYD_DAEMON_USER=$(id -u)
unset KEYD_SOCKET

fail=0
bad() { echo "FAIL: $*"; fail=1; }

start_fake() { # name keyfile
  "$fake" "$tmp/$1.sock" "$2" &
  pids+=($!)
  for _ in $(seq 100); do [[ -S $tmp/$1.sock ]] && return 0; sleep 0.05; done
  echo "FAIL: fake server $1 did not start"; exit 1
}

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ec.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$tmp/ed.pem" 2>/dev/null
for k in ec rsa ed; do start_fake "$k" "$tmp/$k.pem"; done
printf 'INVITE sip:alice@example.com SIP/2.0\r\n' >"$tmp/msg"

# pubkey: the PEM equals OpenSSL's view of the private key's public half.
for k in ec rsa ed; do
  openssl pkey -in "$tmp/$k.pem" -pubout -out "$tmp/$k.want.pub"
  "$keydctl" -s "$tmp/$k.sock" pubkey k -o "$tmp/$k.pub" || bad "pubkey $k failed"
  cmp -s "$tmp/$k.pub" "$tmp/$k.want.pub" || bad "pubkey $k differs from openssl's"
  [[ $(stat -c %a "$tmp/$k.pub") == 644 ]] || bad "pubkey $k file mode $(stat -c %a "$tmp/$k.pub")"
done
# to standard output, options after the words
"$keydctl" pubkey k -s "$tmp/ec.sock" | cmp -s - "$tmp/ec.want.pub" || bad "pubkey to stdout"

verify_dgst() { # sock alg hash [sigopts...]
  local sock=$1 alg=$2 hash=$3; shift 3
  rm -f "$tmp/sig"
  if ! "$keydctl" -s "$sock" sign k -a "$alg" -i "$tmp/msg" -o "$tmp/sig"; then bad "sign $alg failed"; return; fi
  openssl dgst "-$hash" -verify "$tmp/$(basename "$sock" .sock).pub" "$@" -signature "$tmp/sig" "$tmp/msg" >/dev/null \
    || bad "openssl does not verify the $alg signature"
  # --digest: the same, from a digest made by openssl
  openssl dgst "-$hash" -binary "$tmp/msg" >"$tmp/dgst"
  "$keydctl" -s "$sock" sign k -a "$alg" --digest <"$tmp/dgst" >"$tmp/sig2" || { bad "sign --digest $alg failed"; return; }
  openssl dgst "-$hash" -verify "$tmp/$(basename "$sock" .sock).pub" "$@" -signature "$tmp/sig2" "$tmp/msg" >/dev/null \
    || bad "openssl does not verify the $alg --digest signature"
  echo "ok: $alg"
}
verify_dgst "$tmp/ec.sock" ecdsa-sha256 sha256
verify_dgst "$tmp/ec.sock" ecdsa-sha384 sha384
verify_dgst "$tmp/ec.sock" ecdsa-sha512 sha512
verify_dgst "$tmp/rsa.sock" rsa-pkcs1-sha256 sha256
verify_dgst "$tmp/rsa.sock" rsa-pkcs1-sha384 sha384
verify_dgst "$tmp/rsa.sock" rsa-pkcs1-sha512 sha512
for h in sha256 sha384 sha512; do
  verify_dgst "$tmp/rsa.sock" "rsa-pss-$h" "$h" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest
done
[[ $(stat -c %a "$tmp/sig") == 644 ]] || bad "signature file mode $(stat -c %a "$tmp/sig")"
# A signature over a different message must not verify (the check bites).
printf 'other' >"$tmp/other"
"$keydctl" -s "$tmp/ec.sock" sign k -a ecdsa-sha256 -i "$tmp/other" -o "$tmp/sig"
if openssl dgst -sha256 -verify "$tmp/ec.pub" -signature "$tmp/sig" "$tmp/msg" >/dev/null 2>&1; then
  bad "a signature of another message verified"
fi

# Ed25519 signs the message itself.
"$keydctl" -s "$tmp/ed.sock" sign k -a ed25519 -i "$tmp/msg" -o "$tmp/sig" || bad "sign ed25519 failed"
[[ $(stat -c %s "$tmp/sig") == 64 ]] || bad "ed25519 signature is not 64 bytes"
openssl pkeyutl -verify -pubin -inkey "$tmp/ed.pub" -rawin -in "$tmp/msg" -sigfile "$tmp/sig" >/dev/null \
  || bad "openssl does not verify the ed25519 signature"
head -c 16384 /dev/urandom >"$tmp/ed16k"
"$keydctl" -s "$tmp/ed.sock" sign k -a ed25519 -i "$tmp/ed16k" -o "$tmp/sig" || bad "sign ed25519 16384 bytes failed"
openssl pkeyutl -verify -pubin -inkey "$tmp/ed.pub" -rawin -in "$tmp/ed16k" -sigfile "$tmp/sig" >/dev/null \
  || bad "openssl does not verify the 16384-byte ed25519 signature"

# decrypt: RSA-OAEP with each hash; the output file is 0600, even if it
# existed with a wider mode.
printf 'srtp master key material' >"$tmp/secret"
for h in sha1 sha256 sha384 sha512; do
  openssl pkeyutl -encrypt -pubin -inkey "$tmp/rsa.pub" -pkeyopt rsa_padding_mode:oaep \
    -pkeyopt "rsa_oaep_md:$h" -pkeyopt "rsa_mgf1_md:$h" -in "$tmp/secret" -out "$tmp/ct.$h"
  rm -f "$tmp/pt"
  "$keydctl" -s "$tmp/rsa.sock" decrypt k -a "rsa-oaep-$h" -i "$tmp/ct.$h" -o "$tmp/pt" || bad "decrypt $h failed"
  cmp -s "$tmp/pt" "$tmp/secret" || bad "decrypt $h gave the wrong plaintext"
  [[ $(stat -c %a "$tmp/pt") == 600 ]] || bad "decrypt output mode $(stat -c %a "$tmp/pt")"
done
printf 'x' >"$tmp/pt"; chmod 0644 "$tmp/pt"
"$keydctl" -s "$tmp/rsa.sock" decrypt k -a rsa-oaep-sha256 -i "$tmp/ct.sha256" -o "$tmp/pt" || bad "decrypt over a file failed"
[[ $(stat -c %a "$tmp/pt") == 600 ]] || bad "decrypt left an existing output at mode $(stat -c %a "$tmp/pt")"
"$keydctl" -s "$tmp/rsa.sock" decrypt k -a rsa-oaep-sha256 <"$tmp/ct.sha256" | cmp -s - "$tmp/secret" \
  || bad "decrypt stdin to stdout"

# list and status
out=$("$keydctl" -s "$tmp/ec.sock" list)
grep -Eq '^NAME +TYPE +BITS +OPS$' <<<"$out" || bad "list header: $out"
grep -Eq '^fake-key +ec-p256 +256 +sign$' <<<"$out" || bad "list row: $out"
out=$("$keydctl" -s "$tmp/ec.sock" status)
grep -q '^keyd fake, up 0d 00:01:01, 0 connections, 5 requests, 0 errors$' <<<"$out" || bad "status: $out"
out=$("$keydctl" status --prometheus -s "$tmp/ec.sock")
grep -q '^keyd_requests_total 5$' <<<"$out" || bad "status --prometheus: $out"

# Failures: exit status and exactly one line on stderr naming the problem.
expect_fail() { # status pattern command...
  local want=$1 pat=$2 rc=0; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
  if [[ $rc -ne $want ]]; then bad "'$*' exited $rc, want $want ($(cat "$tmp/err"))"; return; fi
  [[ $(wc -l <"$tmp/err") -eq 1 ]] || bad "'$*' wrote not one line: $(cat "$tmp/err")"
  grep -qF -- "$pat" "$tmp/err" || bad "'$*' said '$(cat "$tmp/err")', want '$pat'"
  [[ ! -s $tmp/out ]] || bad "'$*' wrote to stdout"
}
ec=$tmp/ec.sock
expect_fail 1 "keydctl: sign nokey: unknown key: no key 'nokey' for client 'fake-client'" \
  "$keydctl" -s "$ec" sign nokey -a ecdsa-sha256 -i "$tmp/msg"
printf '0123456789abcdef0123456789abcde' >"$tmp/d31"
expect_fail 1 "a SHA256 digest has 32 bytes; the input has 31" \
  "$keydctl" -s "$ec" sign k -a ecdsa-sha256 --digest -i "$tmp/d31"
expect_fail 2 "ed25519 signs the message itself; drop --digest" \
  "$keydctl" -s "$tmp/ed.sock" sign k -a ed25519 --digest -i "$tmp/msg"
head -c $((1024 * 1024 + 1)) /dev/zero >"$tmp/big"
expect_fail 1 "more than 1048576 bytes" "$keydctl" -s "$ec" sign k -a ecdsa-sha256 -i "$tmp/big"
head -c 16385 /dev/zero >"$tmp/ed16k1"
expect_fail 1 "more than 16384 bytes" "$keydctl" -s "$tmp/ed.sock" sign k -a ed25519 -i "$tmp/ed16k1"
expect_fail 2 "unknown algorithm 'ecdsa-md5'" "$keydctl" -s "$ec" sign k -a ecdsa-md5
expect_fail 2 "sign needs -a ALG" "$keydctl" -s "$ec" sign k
expect_fail 2 "rsa-oaep-sha256 is a decryption algorithm" "$keydctl" -s "$ec" sign k -a rsa-oaep-sha256
expect_fail 2 "ecdsa-sha256 is a signature algorithm" "$keydctl" -s "$ec" decrypt k -a ecdsa-sha256
expect_fail 2 "list does not take that option" "$keydctl" -s "$ec" list --digest
expect_fail 2 "unknown command 'frobnicate'" "$keydctl" -s "$ec" frobnicate
expect_fail 2 "pubkey takes one key name" "$keydctl" -s "$ec" pubkey
expect_fail 2 "option -s needs a value" "$keydctl" list -s
expect_fail 2 "unknown option --bogus" "$keydctl" list --bogus
expect_fail 1 "keydctl: sign k: bad input: cannot open $tmp/missing" \
  "$keydctl" -s "$ec" sign k -a ecdsa-sha256 -i "$tmp/missing"
expect_fail 1 "keydctl: list: cannot connect to keyd: cannot connect to $tmp/none.sock" \
  "$keydctl" -s "$tmp/none.sock" list
expect_fail 1 "cannot connect to $tmp/env.sock" env KEYD_SOCKET="$tmp/env.sock" "$keydctl" list
expect_fail 1 "decryption failed" "$keydctl" -s "$tmp/rsa.sock" decrypt k -a rsa-oaep-sha1 -i "$tmp/ct.sha256"
# Read whole: grep -q would stop reading at the first line, and keydctl,
# writing the rest of its help into a closed pipe, would fail (pipefail).
help=$("$keydctl" --help) || bad "--help exit status"
grep -q '^usage: keydctl' <<<"$help" || bad "--help"

[[ $fail -eq 0 ]] && echo "keydctl_fake: all checks passed"
exit $fail
