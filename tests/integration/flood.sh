#!/usr/bin/env bash
# flood.sh: one client cannot write the audit log faster than its rate
# allows, whatever it sends, and cannot stop the others being served.
# Client "flooder" (rate = 5/s) runs, all at once for FLOOD_S seconds,
# kd_raw storms of pipelined hellos, pipelined signs, frames that do not
# decode, oversized frames, and a connect loop (every other connection
# says hello before it closes, the rest close at once). Client
# "steady", another uid with no rate, has keydctl sign every half second
# throughout; every signature must come back in time and verify with
# OpenSSL. Afterwards the audit log may have grown by no more than the
# flooder's rate allows, plus its folded flood lines, plus steady's own
# lines and the daemon's stop lines (the bound is worked out below).
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
need_root

NOGROUP=$(getent group nogroup | cut -d: -f3) || fail "no group nogroup"
FLOODER=40020
STEADY=40021
TOKEN=flood
RATE=5                  # the flooder's rate, per second
BURST=$(( RATE < 2 ? 2 : RATE )) # its bucket: a second's worth, at least 2 (policy.c)
FLOOD_S=5
STEADY_MS=3000          # one keydctl sign as steady, start to exit: a
                        # liveness bound, not a performance figure
# Under AddressSanitizer keyd runs several times slower; the audit bound
# does not depend on speed, the liveness bound does.
[[ ${KEYD_SANITIZE:-OFF} == ON ]] && STEADY_MS=15000
INTERVAL_S=10           # AUDIT_FLOOD_INTERVAL_S (audit.h)

make_token $TOKEN
keygen EC:prime256v1 ec 01 --usage-sign
export_pub 01 "$T/ec.pem"
write_pin
write_config <<CONF
socket_group = nogroup
[key ec]
uri = pkcs11:token=$TOKEN;object=ec;type=private
ops = sign
[client flooder]
uid = $FLOODER
keys = ec
ops = sign
rate = $RATE/s
[client steady]
uid = $STEADY
keys = ec
ops = sign
CONF
printf 'INVITE sip:bob@example.com SIP/2.0\r\n' > "$T/msg"
chmod 0644 "$T/msg"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# steady SECONDS: keydctl sign as steady every half second; prints the
# number of signatures, each verified. Exits 1 at the first that fails,
# is late or does not verify.
steady() {
  local n=0 t0 t1 end=$(( $(now_ms) + $1 * 1000 ))
  while (( $(now_ms) < end )); do
    n=$((n + 1))
    t0=$(now_ms)
    as_user $STEADY $NOGROUP "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" \
      > "$T/steady.sig" 2> "$T/steady.err" ||
      { echo "signature $n failed: $(cat "$T/steady.err")"; return 1; }
    t1=$(now_ms)
    (( t1 - t0 <= STEADY_MS )) ||
      { echo "signature $n took $((t1 - t0)) ms (bound $STEADY_MS ms)"; return 1; }
    verify_sig ecdsa-sha256 "$T/ec.pem" "$T/msg" "$T/steady.sig" >/dev/null 2>&1 ||
      { echo "signature $n does not verify"; return 1; }
    sleep 0.5
  done
  echo "$n"
}

start_keyd
lines0=$(wc -l < "$T/audit.jsonl")

# steady starts before the flood and ends after it.
{ trap - EXIT; steady $((FLOOD_S + 2)); } > "$T/steady.out" 2>&1 &
steady_pid=$!
sleep 0.5

# storm KIND [KEY]: one of the flooder's storms, in the background.
storm() {
  as_user $FLOODER $NOGROUP "$KD_RAW" "$KEYD_SOCKET" storm "$1" "$FLOOD_S" ${2:-} \
    > "$T/storm.$1" 2>&1 &
  pids+=($!)
}
t0=$(now_ms)
pids=()
storm hello
storm sign ec
storm garbage
storm oversized
storm reconnect
for p in "${pids[@]}"; do
  wait "$p" || { cat "$T"/storm.* >&2; fail "a storm failed"; }
done
t1=$(now_ms)
wait "$steady_pid" || fail "steady was not served during the flood: $(cat "$T/steady.out")"
n_steady=$(cat "$T/steady.out")
stop_keyd

sent=0
for f in "$T"/storm.*; do
  echo "    $(cat "$f")"
  sent=$(( sent + $(sed -n 's/^storm [a-z]*: \([0-9]*\) frames.*/\1/p' "$f") ))
done
echo "    steady: $n_steady signatures, each verified"

# The bound. Every frame the flooder sends takes a token from its bucket,
# which holds at most BURST and refills at RATE a second; so over the
# flood's T ms at most BURST + RATE * T / 1000 (rounded up) frames are
# served and audited line by line. Everything else is refused and folded:
# each kind of refusal (the audit's event, client, uid, gid, op, key and
# result: here rate-limited requests, undecodable frames, oversized
# frames, and "busy" connections) is written once per flood interval and
# summed up in one "repeated" line when the interval ends (every
# INTERVAL_S s, or at stop): 2 lines per kind per interval. A flood of T
# ms meets at most T / INTERVAL_S + 2 intervals.
T_MS=$((t1 - t0))
KINDS=4
granted=$(( BURST + (RATE * T_MS + 999) / 1000 ))
folded=$(( 2 * KINDS * (T_MS / (INTERVAL_S * 1000) + 2) ))
bound_flooder=$(( granted + folded ))
# steady's lines: each keydctl sign is a hello and a sign, 2 lines. The
# daemon's own: the stop event, and room for checkpoints (none are made
# here: no audit key) and a log reopen.
steady_lines=$(( 2 * n_steady ))
DAEMON_LINES=3
bound=$(( bound_flooder + steady_lines + DAEMON_LINES ))

grown=$(( $(wc -l < "$T/audit.jsonl") - lines0 ))
flooder_lines=$(tail -n +"$((lines0 + 1))" "$T/audit.jsonl" | grep -c '"client":"flooder"' || true)
steady_got=$(tail -n +"$((lines0 + 1))" "$T/audit.jsonl" | grep -c '"client":"steady"' || true)
echo "    flood of $T_MS ms: $sent frames sent; $flooder_lines flooder lines (bound $granted served + $folded folded = $bound_flooder); log grew by $grown lines (bound $bound), $(du -k "$T/audit.jsonl" | cut -f1) kB"
(( sent > 10 * bound_flooder )) || fail "the flood sent only $sent frames: not a flood"
(( flooder_lines <= bound_flooder )) ||
  fail "the flooder wrote $flooder_lines audit lines, more than its rate allows ($bound_flooder)"
(( steady_got == steady_lines )) || fail "steady has $steady_got audit lines, want $steady_lines"
(( grown <= bound )) || fail "the audit log grew by $grown lines, bound $bound"
# The refusals are not lost: they are counted in "repeated" lines.
grep '"event":"repeated"' "$T/audit.jsonl" | grep '"client":"flooder"' |
  has '"op":"rate-limited"' || fail "no repeated line counts the flooder's rate-limited requests"
pass "a client at $RATE/s flooding for $FLOOD_S s wrote $flooder_lines audit lines (bound $bound_flooder); steady was served throughout"
