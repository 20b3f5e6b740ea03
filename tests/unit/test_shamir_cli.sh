#!/bin/bash
# test_shamir_cli.sh: keyd-backup shamir split/combine as a user runs them:
# round trips, the official vectors' behaviour through the program, exit
# statuses and the one-line error messages (which must name the bad share
# and word, and must not echo secrets).
set -u

B="${KEYD_BUILD_DIR:?}/keyd/keyd-backup"
if [ ! -x "$B" ]; then
	echo "keyd-backup is not built ($B); build the keyd-backup target" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# expect_err STATUS PATTERN DESC CMD...: runs CMD (stdin from $tmp/in),
# wants exit STATUS, exactly one stderr line matching PATTERN (grep -E),
# nothing on stdout.
expect_err() {
	local want=$1 pat=$2 desc=$3 st
	shift 3
	"$@" <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
	st=$?
	[ "$st" = "$want" ] || fail "$desc: exit $st, want $want"
	[ "$(wc -l <"$tmp/err")" = 1 ] || fail "$desc: stderr is not one line: $(cat "$tmp/err")"
	grep -Eq -- "$pat" "$tmp/err" || fail "$desc: stderr '$(cat "$tmp/err")' does not match '$pat'"
	[ ! -s "$tmp/out" ] || fail "$desc: something on stdout"
}

# combine_ok WANT DESC ARGS...: combine of $tmp/in gives hex WANT.
combine_ok() {
	local want=$1 desc=$2 got
	shift 2
	got=$("$B" shamir combine "$@" <"$tmp/in" 2>"$tmp/err") ||
		fail "$desc: combine failed: $(cat "$tmp/err")"
	[ "$got" = "$want" ] || fail "$desc: combined to something else"
	[ ! -s "$tmp/err" ] || fail "$desc: stderr not empty"
}

S16=0123456789abcdeffedcba9876543210
S64=$(printf '%02x' $(seq 0 63) | tr -d '\n')

# --- 2-of-3, every pair and the triple ---------------------------------------
echo "$S16" | "$B" shamir split --threshold 2 --shares 3 >"$tmp/s" 2>"$tmp/err" ||
	fail "split 2-of-3: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/s")" = 3 ] || fail "split 2-of-3: not 3 lines"
while read -r line; do
	[ "$(echo "$line" | wc -w)" = 20 ] || fail "a 128-bit share is not 20 words"
done <"$tmp/s"
for pair in 1,2 1,3 2,3 1,2,3; do
	sed -n "$(echo "$pair" | sed 's/\([0-9]\)/\1p/g; s/,/;/g')" "$tmp/s" >"$tmp/in"
	combine_ok "$S16" "2-of-3 shares $pair"
done
sed -n 2p "$tmp/s" >"$tmp/in"
expect_err 1 '^keyd-backup: 1 of the 2 shares needed were given; add 1 more$' \
	"one share of 2-of-3" "$B" shamir combine
grep -q "$S16" "$tmp/err" && fail "secret in an error message"
# The same share twice.
sed -n '2p;2p' "$tmp/s" >"$tmp/in"
expect_err 1 '^keyd-backup: share 2 is the same as share 1; give each share only once$' \
	"duplicate share" "$B" shamir combine

# --- whitespace is tolerated ---------------------------------------------------
{ echo; sed -n 1p "$tmp/s" | sed 's/ /   /g; s/^/  /'; echo "   "; sed -n 3p "$tmp/s" | tr ' ' '\t'; printf '\n\n'; } >"$tmp/in"
combine_ok "$S16" "blank lines and extra blanks"
# Upper case hex and whitespace inside the secret.
echo " 0123 4567 89AB CDEF fedc ba98 7654 3210 " | "$B" shamir split --threshold 1 --shares 1 >"$tmp/in" ||
	fail "split of spaced hex"
combine_ok "$S16" "1-of-1 from spaced hex"

# --- groups -------------------------------------------------------------------
echo "$S64" | "$B" shamir split --group-threshold 2 --group 2/3 --group 1/1 --group 3/5 >"$tmp/g" 2>"$tmp/err" ||
	fail "group split: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/g")" = 9 ] || fail "group split: not 9 lines"
[ "$(head -1 "$tmp/g" | wc -w)" = 59 ] || fail "a 512-bit share is not 59 words"
sed -n '1p;3p;4p' "$tmp/g" >"$tmp/in"
combine_ok "$S64" "groups 1 and 2"
sed -n '4p;9p;5p;7p' "$tmp/g" >"$tmp/in"
combine_ok "$S64" "groups 2 and 3"
sed -n '1p;2p;5p;6p' "$tmp/g" >"$tmp/in"
expect_err 1 '^keyd-backup: group 3: 2 of the 3 shares it needs were given \(share 3 is one\); add 1 more from that group$' \
	"group 3 short" "$B" shamir combine
sed -n '1p;2p' "$tmp/g" >"$tmp/in"
expect_err 1 '^keyd-backup: shares of 1 of the 2 groups needed were given; add shares of 1 more group$' \
	"one group" "$B" shamir combine

# --- passphrase, no-extendable, iteration exponent ------------------------------
printf 'correct horse ~ battery\n' >"$tmp/pf"
echo "$S16" | "$B" shamir split --threshold 3 --shares 5 --passphrase-file "$tmp/pf" \
	--no-extendable --iteration-exponent 0 >"$tmp/p" || fail "split with passphrase"
sed -n '5p;1p;3p' "$tmp/p" >"$tmp/in"
combine_ok "$S16" "passphrase" --passphrase-file "$tmp/pf"
got=$("$B" shamir combine <"$tmp/in") || fail "combine without passphrase failed"
[ "$got" != "$S16" ] || fail "no passphrase gave the secret"
[ "${#got}" = 32 ] || fail "no passphrase: not a 16-byte secret"
printf 'tab\there\n' >"$tmp/pfbad"
expect_err 1 '^keyd-backup: passphrase file .*: character 4 is not printable ASCII' \
	"tab in passphrase" "$B" shamir combine --passphrase-file "$tmp/pfbad"
expect_err 1 '^keyd-backup: cannot open passphrase file .*/nonexistent: No such file or directory$' \
	"missing passphrase file" "$B" shamir combine --passphrase-file "$tmp/nonexistent"

# --- official vectors through the program ------------------------------------------
printf 'TREZOR' >"$tmp/trezor"
echo "duckling enlarge academic academic agency result length solution fridge kidney coal piece deal husband erode duke ajar critical decision keyboard" >"$tmp/in"
combine_ok bb54aac4b89dc868ba37d9cc21b2cece "vector 1" --passphrase-file "$tmp/trezor"
echo "duckling enlarge academic academic agency result length solution fridge kidney coal piece deal husband erode duke ajar critical decision kidney" >"$tmp/in"
expect_err 1 '^keyd-backup: share 1: word 20 \("kidney"\) is probably wrong: checksum does not match; compare that word with the written share$' \
	"vector 2" "$B" shamir combine --passphrase-file "$tmp/trezor"
grep -q duckling "$tmp/err" && fail "share words in an error message"
# A wrong word in the second share, middle of the mnemonic.
{ sed -n 1p "$tmp/s"; sed -n 2p "$tmp/s" | awk '{ $7 = ($7 == "academic" ? "acid" : "academic"); print }'; } >"$tmp/in"
expect_err 1 '^keyd-backup: share 2: word 7 \("(academic|acid)"\) is probably wrong: checksum does not match' \
	"wrong word 7 of share 2" "$B" shamir combine
{ sed -n 1p "$tmp/s"; sed -n 2p "$tmp/s" | awk '{ $9 = "zzzz"; print }'; } >"$tmp/in"
expect_err 1 '^keyd-backup: share 2: word 9 is not in the SLIP-0039 word list' \
	"unknown word" "$B" shamir combine
sed -n 1p "$tmp/s" | cut -d' ' -f1-19 >"$tmp/in"
expect_err 1 '^keyd-backup: share 1 has 19 words' "19 words" "$B" shamir combine
# Vector 6: different identifiers.
printf '%s\n%s\n' \
	"adequate smoking academic acid debut wine petition glen cluster slow rhyme slow simple epidemic rumor junk tracks treat olympic tolerate" \
	"adequate stay academic agency agency formal party ting frequent learn upstairs remember smear leaf damage anatomy ladle market hush corner" >"$tmp/in"
expect_err 1 '^keyd-backup: share 2 comes from a different split than share 1 \(the identifier differs\)' \
	"vector 6" "$B" shamir combine --passphrase-file "$tmp/trezor"

# --- bad input and usage -------------------------------------------------------------
echo "0123456789abcdefXedcba9876543210" >"$tmp/in"
expect_err 1 'not hex: character 17 is not a hex digit' "bad hex" \
	"$B" shamir split --threshold 2 --shares 3
grep -q 0123456789abcdef "$tmp/err" && fail "secret echoed in an error"
echo "0123456789abcdeffedcba987654321" >"$tmp/in"
expect_err 1 'odd number of hex digits' "odd hex" "$B" shamir split --threshold 2 --shares 3
echo "0123456789abcdeffedcba98765432" >"$tmp/in"
expect_err 1 'is 15 bytes; SLIP-0039 needs at least 16' "short secret" \
	"$B" shamir split --threshold 2 --shares 3
echo "0123456789abcdeffedcba987654321000" >"$tmp/in"
expect_err 1 'is 17 bytes; .*even number of bytes' "odd length secret" \
	"$B" shamir split --threshold 2 --shares 3
: >"$tmp/in"
expect_err 1 'no master secret on standard input' "empty input" \
	"$B" shamir split --threshold 2 --shares 3
expect_err 1 'no shares on standard input' "no shares" "$B" shamir combine
echo "$S16" >"$tmp/in"
expect_err 2 '--threshold 1 with --shares 3 gives every holder the whole secret' \
	"1-of-3" "$B" shamir split --threshold 1 --shares 3
expect_err 2 '--threshold 4 is more than --shares 3' "4-of-3" \
	"$B" shamir split --threshold 4 --shares 3
expect_err 2 '--shares needs a number from 1 to 16' "17 shares" \
	"$B" shamir split --threshold 2 --shares 17
expect_err 2 '--group-threshold 3 is more than the 2 groups given' "GT > G" \
	"$B" shamir split --group-threshold 3 --group 2/3 --group 1/1
expect_err 2 '--group 1/2: a threshold of 1 with 2 shares' "group 1/2" \
	"$B" shamir split --group-threshold 1 --group 1/2
expect_err 2 '--group x/3: give the group' "bad group" \
	"$B" shamir split --group-threshold 1 --group x/3
expect_err 2 'not both' "both modes" \
	"$B" shamir split --threshold 2 --shares 3 --group-threshold 1 --group 2/3
expect_err 2 'say how to split' "no policy" "$B" shamir split
expect_err 2 '--iteration-exponent needs a number from 0 to 15' "e = 16" \
	"$B" shamir split --threshold 2 --shares 3 --iteration-exponent 16
expect_err 2 'unknown option or missing value: --bogus' "bad option" \
	"$B" shamir combine --bogus
expect_err 2 "unknown command 'shamir frobnicate'" "bad command" "$B" shamir frobnicate
expect_err 2 'no command given' "no command" "$B"
"$B" --help >"$tmp/out" || fail "--help failed"
grep -q 'shamir split' "$tmp/out" || fail "--help does not list shamir split"

if [ "$failures" != 0 ]; then
	echo "test_shamir_cli: $failures failures" >&2
	exit 1
fi
echo "test_shamir_cli: all passed"
