#!/usr/bin/env bash
# backup_typing.sh: shares typed at a terminal (issue 18), driven through a
# pseudo-terminal by pty_drive, into keyd-backup reshare (which reads typed
# shares as restore does, and needs no token):
#   - echo and line editing are off while a share is typed, and no run of
#     the typed words reaches the terminal;
#   - a word is accepted, and completed, from its first four letters: a
#     share typed as four-letter prefixes matches its commitment;
#   - letters that begin no SLIP-0039 word are refused at once;
#   - a share with a wrong word is refused by its RS1024 checksum, and
#     may be typed again;
#   - after each share: whether it checks and fits the set, and how many
#     more shares are needed;
#   - Backspace takes a letter back; whole words are taken too;
#   - Ctrl-C stops with nothing written; SIGTERM puts the terminal back;
#     restore reads typed shares alike;
#   - with groups, typed into drill: after each share, how many more
#     shares each group needs, and how many more groups.
source "$(dirname "$0")/lib.sh"

KB=$KEYD_BUILD_DIR/keyd/keyd-backup
DRIVE=$KEYD_BUILD_DIR/tests/pty_drive
M=$SOFTHSM_MODULE
WORDLIST=$KEYD_SOURCE_DIR/keyd/backup/slip39_wordlist.txt
for f in "$KB" "$DRIVE"; do [[ -x $f ]] || fail "$f is not built"; done

OLD=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
NEW=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$OLD" "$NEW"; (exit $rc); cleanup' EXIT

make_token A
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"
chmod 0400 "$T/sopin"
"$KB" keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --type ec:p256 --label sip-tls --id 01 --usage sign >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "keygen"; }
"$KB" create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --so-pin-file "$T/sopin" --key pkcs11:object=sip-tls --threshold 2 --shares 3 \
  --iteration-exponent 0 --bundle "$T/old.kbk" --shares-dir "$OLD" >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "create"; }
mapfile -t sheets < <(ls "$OLD"/share-*.txt)
read -ra w1 <<< "$(sed -n 's/^mnemonic: //p' "${sheets[0]}")"
read -ra w3 <<< "$(sed -n 's/^mnemonic: //p' "${sheets[2]}")"
[[ ${#w1[@]} -eq 33 && ${#w3[@]} -eq 33 ]] || fail "the sheets do not hold 33 words"
# reshare and drill refuse to run where keyd runs: in a PID namespace of
# their own where this machine allows one, else with --allow-online (lib.sh).
offline_setup

# Share 1 as four-letter prefixes; share 3 with word 11 replaced by the
# next word of the list (RS1024 catches any one wrong word), then share 3
# in full words, with Backspace (\x7f) taking back two letters of word 1,
# and, from an empty word, the last letter of word 2.
prefixes=$(for w in "${w1[@]}"; do printf '%s ' "${w:0:4}"; done)
i=$(grep -nx "${w3[10]}" "$WORDLIST" | cut -d: -f1)
other=$(sed -n "$(( i % 1024 + 1 ))p" "$WORDLIST")
bad=("${w3[@]}"); bad[10]=$other
full="${w3[*]}"
slip="${w3[0]:0:2}\\x7f\\x7f${w3[0]} ${w3[1]} \\x7f${w3[1]: -1} ${w3[*]:2}"
cat > "$T/script" <<EOF
expect Type the shares, one at a time
expect share 1: 0 of 33 words
noecho
send acax
expect share 1, word 1: no SLIP-0039 word begins with those letters; type word 1 again
send zy
expect share 1, word 1: no SLIP-0039 word begins with those letters; type word 1 again
send ${w1[0]:0:3} \r
expect share 1, word 1: type at least the first four letters of each word; type word 1 again
send 42
expect share 1, word 1: only letters, spaces and Enter make a share; type word 1 again
send ${prefixes}\r
expect share 1: the checksum (RS1024) is right and it fits the set: group 1, member 1, matching its commitment in the bundle; 1 more share needed (1 of 2 given)
expect share 2: 0 of 33 words
noecho
send ${bad[*]}\r
expect word 11 (
expect is probably wrong: checksum does not match
expect that share was not taken; type it again, or another
expect share 2: 0 of 33 words
send ${slip}\r
expect share 2: the checksum (RS1024) is right and it fits the set: group 1, member 3, matching its commitment in the bundle; enough shares (2 of 2)
expect share sheet
exit 0
EOF
offline "$DRIVE" "$T/script" "$T/transcript" "$KB" reshare "${ONLINE[@]}" --bundle "$T/old.kbk" \
  --threshold 2 --shares 2 --new-bundle "$T/new.kbk" --shares-dir "$NEW" \
  2>"$T/err" || { cat "$T/err" "$T/transcript" >&2; fail "typing two shares into reshare"; }
[[ -s $T/new.kbk && $(ls "$NEW" | wc -l) -eq 2 ]] || fail "reshare from typed shares wrote nothing"
pass "typed shares: prefixes completed, unknown letters and a short word refused at once, a bad checksum refused, then taken"

# Nothing typed reached the terminal: no two typed words (or prefixes) in
# a row, and no word of share 1, whose words were typed as prefixes. (The
# checksum message may name the wrong word typed, which is not the
# share's.)
# The word counts the prompt redraws are taken out first, so that letters
# written between them would be seen in a row.
tr -d '\r' < "$T/transcript" | sed 's/share [0-9]*: [0-9]* of 33 words //g' > "$T/seen"
for k in $(seq 0 31); do
  for pair in "${w1[k]:0:4} ${w1[k+1]:0:4}" "${w3[k]} ${w3[k+1]}" "${w1[k]:0:4}${w1[k+1]:0:4}" "${w3[k]}${w3[k+1]}"; do
    if grep -qF -- "$pair" "$T/seen"; then fail "the terminal showed typed words: '$pair'"; fi
  done
done
if grep -q "acax\|zy\b" "$T/seen"; then fail "the terminal showed the refused letters"; fi
pass "nothing typed was echoed"

# The new set opens the new bundle: the typed words were the shares.
"$KB" verify --bundle "$T/new.kbk" --share-file "$(ls "$NEW"/share-*-m1.txt)" \
  --share-file "$(ls "$NEW"/share-*-m2.txt)" >"$T/out" 2>"$T/err" ||
  { cat "$T/err" >&2; fail "verify the new set"; }
grep -q "^the 2 shares combine and the bundle MAC verifies" "$T/out" || fail "verify: $(cat "$T/out")"
pass "the set made from typed shares opens its bundle"

# Ctrl-C stops typing and puts the terminal back; nothing is written.
cat > "$T/script2" <<EOF
expect share 1: 0 of 33 words
send ${w1[0]:0:4} ${w1[1]:0:4} \x03
expect share 1: stopped
exit 1
EOF
offline "$DRIVE" "$T/script2" "$T/transcript2" "$KB" reshare "${ONLINE[@]}" --bundle "$T/old.kbk" \
  --threshold 2 --shares 3 --new-bundle "$T/new2.kbk" --shares-dir "$NEW" \
  2>"$T/err" || { cat "$T/err" "$T/transcript2" >&2; fail "Ctrl-C"; }
grep -q "no shares were given" "$T/transcript2" || fail "after Ctrl-C: $(cat "$T/transcript2")"
[[ ! -e $T/new2.kbk && $(ls "$NEW" | wc -l) -eq 2 ]] || fail "a stopped reshare wrote files"
pass "Ctrl-C stops, exit 1, nothing written"

# SIGTERM while a share is being typed: the terminal gets echo and line
# editing back before keyd-backup ends by the signal; nothing is written.
cat > "$T/script3" <<EOF
expect share 1: 0 of 33 words
send ${w1[0]:0:4} ${w1[1]:0:4}
noecho
signal 15
killed 15
echo
EOF
offline "$DRIVE" "$T/script3" "$T/transcript3" "$KB" reshare "${ONLINE[@]}" --bundle "$T/old.kbk" \
  --threshold 2 --shares 3 --new-bundle "$T/new3.kbk" --shares-dir "$NEW" \
  2>"$T/err" || { cat "$T/err" "$T/transcript3" >&2; fail "SIGTERM while typing"; }
[[ ! -e $T/new3.kbk && $(ls "$NEW" | wc -l) -eq 2 ]] || fail "a reshare ended by SIGTERM wrote files"
pass "SIGTERM while typing: the terminal is put back, nothing written"

# restore reads typed shares the same way: two shares typed as prefixes
# restore the bundle onto blank token B.
make_token B
p2=$(for w in "${w3[@]}"; do printf '%s ' "${w:0:4}"; done)
cat > "$T/script3" <<EOF
expect share 1: 0 of 33 words
noecho
send ${p2}\r
expect share 1: the checksum (RS1024) is right and it fits the set: group 1, member 3, matching its commitment in the bundle; 1 more share needed (1 of 2 given)
expect share 2: 0 of 33 words
send ${prefixes}\r
expect share 2: the checksum (RS1024) is right and it fits the set: group 1, member 1, matching its commitment in the bundle; enough shares (2 of 2)
expect restored 1 key onto token 'B'
exit 0
EOF
"$DRIVE" "$T/script3" "$T/transcript3" "$KB" restore --module "$M" --token pkcs11:token=B \
  --pin-file "$T/pin" --bundle "$T/old.kbk" 2>"$T/err" ||
  { cat "$T/err" "$T/transcript3" >&2; fail "typing two shares into restore"; }
pass "restore takes typed shares the same way"


# Groups, typed into drill: after each share, how many more each group
# needs and how many groups. The set is old.kbk's BMK reshared (from share
# files) into 2 of {2 of 2, 1 of 1}; the drill runs on A, which holds the
# key, with session objects only.
G=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$OLD" "$NEW" "$G"; (exit $rc); cleanup' EXIT
offline "$KB" reshare "${ONLINE[@]}" --bundle "$T/old.kbk" --share-file "${sheets[0]}" --share-file "${sheets[1]}" \
  --group-threshold 2 --group 2/2 --group 1/1 --new-bundle "$T/groups.kbk" \
  --shares-dir "$G" >/dev/null 2>"$T/err" || { cat "$T/err" >&2; fail "reshare into groups"; }
gw() { sed -n 's/^mnemonic: //p' "$G"/share-*-"$1".txt; }
cat > "$T/script4" <<EOF
expect At least 3 are needed
expect share 1: 0 of 33 words
noecho
send $(gw g1-m2)\r
expect share 1: the checksum (RS1024) is right and it fits the set: group 1, member 2, matching its commitment in the bundle; group 1: 1 more share (1 of 2); group 2: 1 more share (0 of 1); 2 more groups needed (0 of 2 done)
expect share 2: 0 of 33 words
send $(gw g2-m1)\r
expect share 2: the checksum (RS1024) is right and it fits the set: group 2, member 1, matching its commitment in the bundle; group 1: 1 more share (1 of 2); group 2: done; 1 more group needed (1 of 2 done)
expect share 3: 0 of 33 words
send $(gw g1-m1)\r
expect share 3: the checksum (RS1024) is right and it fits the set: group 1, member 1, matching its commitment in the bundle; group 1: done; group 2: done; enough groups (2 of 2)
expect drill passed: all 1 key
exit 0
EOF
offline "$DRIVE" "$T/script4" "$T/transcript4" "$KB" drill --module "$M" --token pkcs11:token=A \
  --pin-file "$T/pin" --bundle "$T/groups.kbk" "${ONLINE[@]}" 2>"$T/err" ||
  { cat "$T/err" "$T/transcript4" >&2; fail "typing three shares of two groups into drill"; }
pass "drill takes typed shares; after each, what each group and the set still need"

# A shares directory (or a --new-bundle directory) checked at the start is
# the one written at the end: after share 1 is taken, the directory is
# renamed and a symbolic link to another put in its place. keyd-backup
# writes through the descriptor it checked, sees that the name no longer
# leads there, and writes nothing, neither into the link's target nor into
# the moved directory.
S=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
trap 'rc=$?; rm -rf "$OLD" "$NEW" "$G" "$S"; (exit $rc); cleanup' EXIT
mkdir -m 0700 "$S/dir" "$S/evil" "$S/bdir"
swap_script() {  # swap_script DIR: a script that swaps DIR after share 1
  cat <<EOF
expect share 1: 0 of 33 words
noecho
send ${prefixes}\r
expect share 1: the checksum (RS1024) is right
expect share 2: 0 of 33 words
shell mv $1 $1.moved && ln -s $S/evil $1
send ${full}\r
exit 1
EOF
}
swap_script "$S/dir" > "$T/script5"
offline "$DRIVE" "$T/script5" "$T/transcript5" "$KB" reshare "${ONLINE[@]}" --bundle "$T/old.kbk" \
  --threshold 2 --shares 2 --new-bundle "$S/bdir/swap.kbk" --shares-dir "$S/dir" \
  2>"$T/err" || { cat "$T/err" "$T/transcript5" >&2; fail "reshare into a swapped shares directory"; }
grep -q "keyd-backup: --shares-dir $S/dir was moved or replaced after it was checked; no share sheet was written" "$T/transcript5" ||
  fail "a swapped shares directory: $(cat "$T/transcript5")"
[[ -z $(ls -A "$S/evil") && -z $(ls -A "$S/dir.moved") && -z $(ls -A "$S/bdir") ]] ||
  fail "reshare wrote into a swapped shares directory: $(ls -lA "$S"/*)"
rm -f "$S/dir"; mv "$S/dir.moved" "$S/dir"
swap_script "$S/bdir" > "$T/script6"
offline "$DRIVE" "$T/script6" "$T/transcript6" "$KB" reshare "${ONLINE[@]}" --bundle "$T/old.kbk" \
  --threshold 2 --shares 2 --new-bundle "$S/bdir/swap.kbk" --shares-dir "$S/dir" \
  2>"$T/err" || { cat "$T/err" "$T/transcript6" >&2; fail "reshare into a swapped bundle directory"; }
grep -q "keyd-backup: --new-bundle $S/bdir/swap.kbk: its directory $S/bdir was moved or replaced after it was checked; nothing was written" "$T/transcript6" ||
  fail "a swapped bundle directory: $(cat "$T/transcript6")"
[[ -z $(ls -A "$S/evil") && -z $(ls -A "$S/bdir.moved") && -z $(ls -A "$S/dir") ]] ||
  fail "reshare wrote beside a swapped bundle directory: $(ls -lA "$S"/*)"
pass "a shares or bundle directory swapped for a link while shares are typed: nothing written anywhere"
