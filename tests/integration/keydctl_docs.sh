#!/usr/bin/env bash
# keydctl_docs.sh: the example outputs in docs/keydctl.md are real. Each
# output block there follows a marker line
#   <!-- keydctl_docs.sh: the output of the commands above -->
# and the ```sh block before the marker holds its commands. This test
# makes the development set-up of scripts/dev-run.sh (token keyd-dev, keys
# by keyd-backup keygen, the audit key, the same keyd.conf), runs the
# blocks in order from a directory whose run/keyd.sock is keyd's socket,
# and compares each output with its block after normalising what differs
# from run to run: uptime, token serial, latencies, connection counts
# (a closing connection may still count), SRTP keys, blobs and KEK names.
# KEYD_DOCS_WRITE=FILE writes the document with the real outputs to FILE
# (how the blocks were made: cp FILE docs/keydctl.md).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"

DOC=$KEYD_SOURCE_DIR/docs/keydctl.md
MARKER='<!-- keydctl_docs.sh: the output of the commands above -->'
TOKEN=keyd-dev
make_token $TOKEN
write_pin
kb() { "$KEYD_BUILD_DIR/keyd/keyd-backup" keygen --module "$SOFTHSM_MODULE" \
  --token "pkcs11:token=$TOKEN" --pin-file "$T/pin" "$@" >/dev/null; }
kb --type ec:p256 --label sip-tls --id 01 --usage sign
kb --type rsa:2048 --label sip-tls-rsa --id 02 --usage sign,decrypt
kb --type aes:256 --label srtp-kek --id 03 --usage srtp
kb --type ec:p256 --label keyd-audit --id 04 --usage sign
write_config <<CONF
audit_key = pkcs11:token=$TOKEN;object=keyd-audit;type=private

[key sip-tls]
uri = pkcs11:token=$TOKEN;object=sip-tls;type=private
ops = sign

[key sip-tls-rsa]
uri = pkcs11:token=$TOKEN;object=sip-tls-rsa;type=private
ops = sign, decrypt

[key srtp-kek]
uri = pkcs11:token=$TOKEN;object=srtp-kek;type=secret-key
ops = srtp-new, srtp-open

[client dev]
uid = $(id -u)
keys = sip-tls, sip-tls-rsa, srtp-kek
ops = sign, decrypt, srtp-new, srtp-open, status, reload
CONF
start_keyd

# The blocks: cmd-N (the sh block before marker N) and want-N (the block
# after it); n holds how many.
mkdir -p "$T/blocks" "$T/tmp"
awk -v dir="$T/blocks" -v marker="$MARKER" '
  /^```/ {
    if (!inblk) { inblk = 1; kind = substr($0, 4); buf = ""; next }
    inblk = 0
    if (want) { printf "%s", buf > (dir "/want-" n); close(dir "/want-" n); want = 0 }
    else if (kind == "sh") last = buf
    next
  }
  inblk { buf = buf $0 "\n"; next }
  $0 == marker {
    n++; printf "%s", last > (dir "/cmd-" n); close(dir "/cmd-" n); want = 1
  }
  END { print n + 0 > (dir "/n") }' "$DOC"
n=$(cat "$T/blocks/n")
[[ $n -ge 4 ]] || fail "docs/keydctl.md has $n marked examples, not the 4 or more expected"

# What the examples before status did (docs/keydctl.md's pubkey and sign).
echo 'hello keyd' > "$T/tmp/msg"
env -u KEYD_SOCKET PATH="$KEYD_BUILD_DIR/client:$PATH" bash -c "
  cd '$T' && keydctl -s run/keyd.sock pubkey sip-tls -o '$T/tmp/sip-tls.pem' &&
  keydctl -s run/keyd.sock sign sip-tls -a ecdsa-sha256 -i '$T/tmp/msg' -o '$T/tmp/msg.sig'" ||
  fail "the pubkey and sign examples failed"

normalise() {
  sed -E -e 's/^keyd [^,]*, up [0-9]+d [0-9]{2}:[0-9]{2}:[0-9]{2}, [0-9]+ connections?,/keyd V, up T, N connections,/' \
    -e 's/, serial [0-9a-f]+\)/, serial S)/' \
    -e 's/latency [0-9]+ us/latency L us/g' \
    -e 's/kek-[0-9a-f]{6}/kek-K/g' \
    -e 's/(inline|blob):[A-Za-z0-9+\/=]+/\1:B64/g' \
    -e 's/sha256 [0-9a-f]{64}/sha256 H/g' \
    -e 's/applied [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z/applied W/'
}

skipped=0
for ((i = 1; i <= n; i++)); do
  # keydctl's default socket: an error example needs it absent.
  if grep -q '^keydctl list' "$T/blocks/cmd-$i" && [[ -e /run/keyd/keyd.sock ]]; then
    cp "$T/blocks/want-$i" "$T/blocks/got-$i"; skipped=$((skipped + 1)); continue
  fi
  sed "s|/tmp/|$T/tmp/|g" "$T/blocks/cmd-$i" > "$T/blocks/run-$i"
  (cd "$T" && env -u KEYD_SOCKET PATH="$KEYD_BUILD_DIR/client:$PATH" \
    bash "$T/blocks/run-$i") > "$T/blocks/got-$i" 2>&1 || true
  sed -i "s|$T/tmp/|/tmp/|g" "$T/blocks/got-$i"
  if ! diff -u <(normalise < "$T/blocks/want-$i") <(normalise < "$T/blocks/got-$i") \
      > "$T/blocks/diff-$i"; then
    echo "docs/keydctl.md example $i, commands:" >&2
    cat "$T/blocks/cmd-$i" >&2
    cat "$T/blocks/diff-$i" >&2
    bad=1
  fi
done

if [[ -n ${KEYD_DOCS_WRITE:-} ]]; then
  awk -v dir="$T/blocks" -v marker="$MARKER" '
    /^```/ && skip { skip = 0; print; next }
    skip { next }
    /^```/ && want { print; k++; while ((getline l < (dir "/got-" k)) > 0) print l
                     skip = 1; want = 0; next }
    $0 == marker { want = 1 }
    { print }' "$DOC" > "$KEYD_DOCS_WRITE"
fi
[[ -z ${bad:-} ]] || fail "docs/keydctl.md's examples differ from keydctl's output (above)"
pass "docs/keydctl.md: $((n - skipped)) of $n examples match a real run"
stop_keyd
