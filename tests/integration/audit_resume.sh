#!/usr/bin/env bash
# The audit log across restarts: keyd never vouches for lines it did not
# write. A checkpoint vouches only for its own run (start record to start
# record); lines after a clean stop, a log cut back to an earlier
# checkpoint (a gap against the record in state_dir) and a tail rewritten
# after kill -9 are reported, and keyd-audit verify's exit status says
# which: 0 all verified, 1 tampering proven, 3 unverified lines. Anchors
# (checkpoint lines kept elsewhere) pin the log. Also: a FIFO at the log's
# path on SIGHUP is refused, and every line is valid UTF-8.
source "$KEYD_SOURCE_DIR/tests/integration/lib.sh"
KEYD_AUDIT=$KEYD_BUILD_DIR/keyd/keyd-audit

TOKEN=resume
make_token $TOKEN
keygen EC:prime256v1 ec 01 --usage-sign
keygen EC:prime256v1 audit 02 --usage-sign
export_pub 02 "$T/audit.pem"
write_pin
# No time-based checkpoints: the tests decide where the unsigned tail is.
write_config <<CONF
audit_key = pkcs11:token=$TOKEN;object=audit;type=private
audit_checkpoint_lines = 5
audit_checkpoint_interval = 3600

[key ec]
uri = pkcs11:object=ec;type=private
ops = sign

[client root]
uid = 0
keys = ec
ops = sign, status
CONF
LOG=$T/audit.jsonl
echo msg > "$T/msg"

signs() { for _ in $(seq 1 "$1"); do "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null; done; }
# verify WANT_STATUS PATTERN FILE... [--anchors F]
verify() {
  local want=$1 pat=$2 st=0; shift 2
  "$KEYD_AUDIT" verify "$@" --pubkey "$T/audit.pem" > "$T/v.out" 2>&1 || st=$?
  [[ $st -eq $want ]] || { cat "$T/v.out" >&2; fail "keyd-audit verify $*: status $st, want $want"; }
  [[ -z $pat ]] || grep -q -- "$pat" "$T/v.out" || { cat "$T/v.out" >&2; fail "verify output lacks '$pat'"; }
}
# tail_after_cp: lines after the log's last checkpoint.
tail_after_cp() {
  local k
  k=$(grep -n '"event":"checkpoint"' "$LOG" | tail -n 1 | cut -d: -f1)
  echo $(( $(wc -l < "$LOG") - ${k:-0} ))
}
# signs_with_tail: signs (each writes a hello and a sign line) until at
# least 3 lines follow the last checkpoint.
signs_with_tail() {
  signs 1
  for _ in $(seq 1 5); do [[ $(tail_after_cp) -ge 3 ]] && return 0; signs 1; done
  fail "no unsigned tail"
}
last_start() { grep '"event":"start"' "$LOG" | tail -n 1; }
kill9() { kill -KILL "$KEYD_PID"; wait "$KEYD_PID" 2>/dev/null || true; KEYD_PID=; }
# append_chained MEMBERS: appends a line with the next seq, the given
# members and the right prev, as a forger who can write the log would;
# sets seq to its seq.
append_chained() {
  local last prev
  last=$(tail -n 1 "$LOG")
  seq=$(( $(json_field "$last" seq) + 1 ))
  prev=$(printf '%s' "$last" | sha256sum | cut -d' ' -f1)
  printf '{"seq":%d,"time":"2026-12-06T10:00:00.000000Z",%s,"prev":"%s"}\n' "$seq" "$1" "$prev" >> "$LOG"
}
# rechain FILE FROM: gives lines FROM.. of FILE consecutive seqs and prevs
# again, after the line before FROM (what someone who edited the tail of
# an unsigned log would do to hide it).
rechain() {
  local file=$1 from=$2 n=0 prev seq line
  prev=$(sed -n "$((from - 1))p" "$file" | tr -d '\n' | sha256sum | cut -d' ' -f1)
  seq=$(( $(json_field "$(sed -n "$((from - 1))p" "$file")" seq) + 1 ))
  head -n $((from - 1)) "$file" > "$file.new"
  while IFS= read -r line; do
    line=$(sed -E "s/^\\{\"seq\":[0-9]+,/{\"seq\":$seq,/; s/\"prev\":\"[0-9a-f]{64}\"/\"prev\":\"$prev\"/" <<< "$line")
    printf '%s\n' "$line" >> "$file.new"
    prev=$(printf '%s' "$line" | sha256sum | cut -d' ' -f1)
    seq=$((seq + 1)); n=$((n + 1))
  done < <(tail -n +"$from" "$file")
  mv "$file.new" "$file"
}

# 1. A clean stop and start: everything verifies, and the start record
#    says where it resumed.
start_keyd; signs 7; stop_keyd
cp_line=$(tail -n 1 "$LOG")
cp_seq=$(json_field "$cp_line" seq)
cp_hash=$(printf '%s' "$cp_line" | sha256sum | cut -d' ' -f1)
[[ $(cat "$T/state/audit-checkpoint") == "$cp_seq $cp_hash $LOG" ]] ||
  fail "state_dir's record: $(cat "$T/state/audit-checkpoint"), want $cp_seq $cp_hash"
start_keyd; signs 3; stop_keyd
s=$(grep '"event":"start"' "$LOG" | sed -n 2p)
[[ $(json_field "$s" checkpoint) == ok && $(json_field "$s" resumed_seq) == "$cp_seq" &&
   $(json_field "$s" resumed_hash) == "$cp_hash" && $(json_field "$s" unverified) == 0 ]] ||
  fail "start record after a clean stop: $s"
[[ -z $(json_field "$s" gap) && -z $(json_field "$s" tampered) ]] || fail "a gap after a clean stop: $s"
verify 0 "all [0-9]* lines verified" "$LOG"
pass "clean stop and start: exit 0, the start record resumes from the stop checkpoint"

# 2. kill -9: the lines up to the last checkpoint before the kill verify;
#    the ones after it are unverified (exit 3), even though the next run's
#    checkpoints chain over them.
start_keyd; signs_with_tail
kill9
n_before=$(wc -l < "$LOG")
k_cp=$(grep -n '"event":"checkpoint"' "$LOG" | tail -n 1 | cut -d: -f1)
tail_n=$((n_before - k_cp))
[[ $tail_n -ge 2 ]] || { cut -c1-150 "$LOG" >&2; fail "no unsigned tail after kill -9 ($tail_n lines)"; }
cp_seq=$(json_field "$(sed -n "${k_cp}p" "$LOG")" seq)
start_keyd 2>/dev/null
grep -q "$tail_n lines at the end of $LOG follow its last checkpoint and are unverified" "$T/keyd.log" ||
  fail "no warning about the unverified tail: $(cat "$T/keyd.log")"
signs 6; stop_keyd
s=$(last_start)
[[ $(json_field "$s" unverified) == "$tail_n" && $(json_field "$s" resumed_seq) == "$cp_seq" ]] ||
  fail "start record after kill -9: $s (want $tail_n unverified after seq $cp_seq)"
verify 3 "lines $((k_cp + 1))-$n_before (seq $((cp_seq + 1))-$((cp_seq + tail_n))) are unverified: keyd started again without a checkpoint after them" "$LOG"
grep -q "all [0-9]* lines verified" "$T/v.out" && fail "kill -9's tail reported as verified"
pass "kill -9: exit 3 names the $tail_n lines after the last checkpoint; the rest verifies"

# 3. (b) After kill -9, a request deleted from the unsigned tail and the
#    rest renumbered and chained again: cannot be told from a real crash
#    tail, so exit 3 naming it, never "all lines verified".
cp "$LOG" "$T/before-b.jsonl"
start_keyd; signs_with_tail
kill9
k_cp=$(grep -n '"event":"checkpoint"' "$LOG" | tail -n 1 | cut -d: -f1)
n=$(wc -l < "$LOG")
[[ $((n - k_cp)) -ge 3 ]] || fail "no unsigned tail to rewrite"
# The next-to-last line: a request of this run, never its start record.
sed -i "$((n - 1))d" "$LOG"
rechain "$LOG" $((n - 1))
start_keyd; signs 6; stop_keyd
verify 3 "lines $((k_cp + 1))-$((n - 1)) (seq [0-9]*-[0-9]*) are unverified" "$LOG"
grep -q "$LOG: all [0-9]* lines verified" "$T/v.out" && fail "a rewritten tail reported as verified"
pass "(b) a tail rewritten after kill -9: exit 3, named"

# 4. (a) A forged request appended while keyd was stopped: it follows the
#    stop checkpoint, so it is proven tampering (exit 1, the line named),
#    and keyd says so in its start record.
append_chained '"event":"request","client":"root","uid":0,"gid":0,"pid":1,"op":"sign","key":"ec","mech":"ecdsa-sha256","result":"ok","latency_us":100,"request_bytes":60,"reply_bytes":80'
forged=$(wc -l < "$LOG")
start_keyd 2>/dev/null; signs 6; stop_keyd
grep -q "AUDIT LOG TAMPERED in $LOG: 1 lines follow the stop checkpoint" "$T/keyd.log" ||
  fail "keyd did not warn of the forged line: $(cat "$T/keyd.log")"
[[ -n $(json_field "$(last_start)" tampered) ]] || fail "no tampered field: $(last_start)"
verify 1 "line $forged (seq $seq) follows keyd's clean stop" "$LOG"
pass "(a) a line appended while keyd was stopped: exit 1, named; keyd warns"

# 4b. The same with a start record forged before the line: start records
#     are signed, so it does not pass for a new run. (A fresh log: the
#     last one keeps the forged line of 4 for good.)
rm -f "$LOG" "$T/state/audit-checkpoint"
start_keyd; signs 2; stop_keyd
append_chained '"event":"start","result":"ok","detail":"keyd 0.1.0, 1 key, 1 client","checkpoint":"ok","unverified":0'
forged=$(wc -l < "$LOG")
verify 1 "line $forged (seq $seq) follows keyd's clean stop (the stop checkpoint before it) but is not a signed start record" "$LOG"
start_keyd 2>/dev/null; stop_keyd
grep -q "AUDIT LOG TAMPERED in $LOG: 1 lines follow the stop checkpoint" "$T/keyd.log" ||
  fail "keyd took a forged start record for its own: $(cat "$T/keyd.log")"
pass "a forged start record after a clean stop: exit 1; keyd warns"

# 4c. kill -9, then the unsigned tail deleted back to the last checkpoint:
#     the run ended without a clean stop, which stays visible (exit 3).
rm -f "$LOG" "$T/state/audit-checkpoint"
start_keyd; signs 3; signs_with_tail
sleep 0.3   # the checkpoint reaches state_dir's record
kill9
head -n "$(grep -n '"event":"checkpoint"' "$LOG" | tail -n 1 | cut -d: -f1)" "$LOG" > "$LOG.cut"
mv "$LOG.cut" "$LOG"
start_keyd 2>/dev/null; signs 3; stop_keyd
[[ $(json_field "$(last_start)" previous) == unclean ]] || fail "no previous: unclean: $(last_start)"
verify 3 "the run before it ended without a clean stop, right after its checkpoint" "$LOG"
pass "kill -9 and the unsigned tail removed: exit 3, the unclean end named"

# 4d. Crafted lines never crash the verifier (a null where a string is
#     expected; duplicate members; trailing bytes).
printf '{"seq":0,"prev":"%064d","event":"start","checkpoint":null,"gap":null}\n' 0 > "$T/null.jsonl"
st=0; "$KEYD_AUDIT" verify "$T/null.jsonl" --pubkey "$T/audit.pem" > "$T/v.out" 2>&1 || st=$?
[[ $st -eq 1 || $st -eq 3 ]] || fail "a null member: status $st $(cat "$T/v.out")"
printf '{"seq":0,"prev":"%064d","event":"request"} junk\n' 0 > "$T/junk.jsonl"
verify 1 "line 1 is not a keyd audit line" "$T/junk.jsonl"
pass "crafted members and trailing bytes: no crash"

# 5. (c) The log cut back to a checkpoint in the middle: keyd compares it
#    with the checkpoint it recorded in state_dir, writes a gap record and
#    warns; verify fails (exit 1) on it.
# (a fresh log: this one keeps the forged line of 4 for good)
rm -f "$LOG" "$T/state/audit-checkpoint"
start_keyd; signs 12; stop_keyd
cp "$LOG" "$T/whole.jsonl"
mid=$(grep -n '"event":"checkpoint"' "$LOG" | tail -n 4 | sed -n 1p | cut -d: -f1)
head -n "$mid" "$T/whole.jsonl" > "$LOG"
# The cut log alone verifies: only the record in state_dir (or anchors)
# shows the cut.
verify 0 "" "$LOG"
start_keyd 2>/dev/null; signs 2; stop_keyd
grep -q "AUDIT LOG GAP in $LOG: the log ends at seq" "$T/keyd.log" ||
  fail "no gap warning: $(cat "$T/keyd.log")"
[[ $(json_field "$(last_start)" gap) == "the log ends at seq "* ]] || fail "no gap record: $(last_start)"
verify 1 "keyd found a gap in the log when it started: the log ends at seq" "$LOG"
pass "(c) a log cut back to a middle checkpoint: a gap record and warning, exit 1"

# 6. Rotated while keyd was stopped: the new file continues the recorded
#    checkpoint; no gap, and the two files verify as one log.
cp "$T/whole.jsonl" "$LOG"
# (the record in state_dir is newer than whole.jsonl now: start from a log
# that holds it)
start_keyd 2>/dev/null; stop_keyd
rm -f "$LOG"
start_keyd; signs 2; stop_keyd
s=$(last_start)
[[ -z $(json_field "$s" gap) ]] || fail "a rotation while stopped is taken for a gap: $s"
s=$(head -n 1 "$LOG")
[[ $(json_field "$s" event) == start ]] || fail "first line: $s"
mv "$LOG" "$T/audit.2.jsonl"
start_keyd; signs 1; stop_keyd
[[ -z $(json_field "$(last_start)" gap) ]] || fail "rotation while stopped: $(last_start)"
pass "a log rotated while keyd is stopped continues the recorded checkpoint"

# 7. Anchors: the checkpoint lines as syslog keeps them (with a prefix).
start_keyd; signs 11; stop_keyd
grep '"event":"checkpoint"' "$LOG" | sed 's/^/Dec  6 10:00:00 host keyd[42]: /' > "$T/anchors"
verify 0 "all $(wc -l < "$T/anchors") checkpoints in $T/anchors are in the log" "$LOG" --anchors "$T/anchors"
# An anchor that is not a signed checkpoint (anyone can write to syslog)
# is ignored, not trusted.
sed '2s/"lines":[0-9]*/"lines":99/' "$T/anchors" > "$T/anchors.bad"
verify 0 "" "$LOG" --anchors "$T/anchors.bad"
grep -q "anchors.bad: line 2 is not a checkpoint signed by the audit key: ignored" "$T/v.out" ||
  fail "a forged anchor was not named: $(cat "$T/v.out")"
# The log cut after an earlier checkpoint: the anchors show the cut.
cut_at=$(grep -n '"event":"checkpoint"' "$LOG" | tail -n 3 | sed -n 1p | cut -d: -f1)
head -n "$cut_at" "$LOG" > "$T/cut.jsonl"
verify 1 "is not in the log, which ends at seq" "$T/cut.jsonl" --anchors "$T/anchors"
# Cut back, the record in state_dir rewritten to match (keyd's user can),
# and grown again by keyd: no gap shows on the host, but the lines with
# the anchors' seqs are other lines now.
cp "$T/cut.jsonl" "$LOG"
c=$(tail -n 1 "$LOG")
printf '%s %s %s\n' "$(json_field "$c" seq)" "$(printf '%s' "$c" | sha256sum | cut -d' ' -f1)" "$LOG" > "$T/state/audit-checkpoint"
start_keyd; signs 8; stop_keyd
[[ -z $(json_field "$(last_start)" gap) ]] || fail "the rewritten record still showed a gap"
verify 1 "differs from the copy of it in $T/anchors" "$LOG" --anchors "$T/anchors"
pass "anchors: all found (0), a forged one ignored, the log cut (1), cut and regrown (1)"

# 8. keyd-audit's usage: --pubkey is needed; --help exits 0.
st=0; "$KEYD_AUDIT" verify "$LOG" > "$T/out" 2>&1 || st=$?
[[ $st -eq 2 ]] && grep -q "^keyd-audit: --pubkey is needed" "$T/out" || fail "without --pubkey: $st $(cat "$T/out")"
"$KEYD_AUDIT" --help | has "^usage: keyd-audit verify" || fail "--help"
pass "usage errors"

# 9. A FIFO put at the log's path is refused on SIGHUP (it would block
#    every request once its pipe filled): keyd keeps the old file.
start_keyd
mv "$LOG" "$T/audit.old.jsonl"
mkfifo "$LOG"
kill -HUP "$KEYD_PID"
wait_for "$T/keyd.log" "cannot reopen audit log $LOG: it is not a regular file; keeping the old file"
for _ in $(seq 1 40); do
  timeout 5 "$KEYDCTL" sign ec -a ecdsa-sha256 -i "$T/msg" -o /dev/null || fail "a sign hung or failed after a FIFO rotation"
done
stop_keyd
rm -f "$LOG"; mv "$T/audit.old.jsonl" "$LOG"
pass "a FIFO at the log's path is refused; keyd keeps serving"

# 10. Bytes that are not UTF-8 in a key name and a client version (cut
#     mid-character too) still give valid UTF-8 JSON lines.
start_keyd
"$KEYDCTL" sign $'bad\xff\xfe\xc3' -a ecdsa-sha256 -i "$T/msg" -o /dev/null 2>/dev/null || true
stop_keyd
iconv -f UTF-8 -t UTF-8 "$LOG" > /dev/null || fail "the audit log is not valid UTF-8"
grep -q 'bad\\ufffd\\ufffd\\ufffd' "$LOG" || fail "bad bytes not replaced: $(grep -a '"key":"bad' "$LOG" | head -n 1)"
pass "every line is valid UTF-8; bad bytes become U+FFFD"
