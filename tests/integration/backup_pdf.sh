#!/usr/bin/env bash
# backup_pdf.sh: keyd-backup create --pdf (issue 18, share sheets for
# paper), judged by outside programs:
#   - pdftotext (poppler-utils) finds the numbered words in order, the set
#     id and the bundle fingerprint;
#   - zbarimg (zbar-tools), on the page rendered by pdftoppm, decodes the
#     QR code to exactly the mnemonic (single spaces, no newline);
#   - neither pdftotext's text nor the decompressed PDF (qpdf --qdf) holds
#     the PIN, the SO PIN or the passphrase;
#   - the PDFs are mode 0400, and refused outside tmpfs without
#     --allow-disk.
# Each judge is shown able to fail on a sample that must fail it.
source "$(dirname "$0")/lib.sh"

KB=$KEYD_BUILD_DIR/keyd/keyd-backup
M=$SOFTHSM_MODULE
[[ -x $KB ]] || fail "$KB is not built"
for t in pdftotext:poppler-utils pdftoppm:poppler-utils pdfinfo:poppler-utils \
    pdffonts:poppler-utils zbarimg:zbar-tools qpdf:qpdf; do
  command -v "${t%%:*}" >/dev/null || fail "${t%%:*} is missing: apt-get install ${t#*:}"
done

# Secrets that cannot turn up in a PDF by chance (as 1234 could, in an
# offset or a glyph width).
PIN=Pin-q7ZkW3xv
SO_PIN=SoPin-R8mJt2Lp
PASS=pass-Vh4NwQ9c-ygT

SHARES=$(mktemp -d /dev/shm/keyd-test.XXXXXX)
# A directory on a disk file system, for the --allow-disk steps: $T may be
# on tmpfs (a fresh root's /tmp is); the build tree or /var/tmp is not.
DISK=
for d in "$KEYD_BUILD_DIR" /var/tmp; do
  case $(stat -f -c %T "$d" 2>/dev/null) in
    tmpfs | ramfs | '') ;;
    *) DISK=$(mktemp -d "$d/keyd-test-disk.XXXXXX"); break ;;
  esac
done
trap 'rc=$?; rm -rf "$SHARES" ${DISK:+"$DISK"}; (exit $rc); cleanup' EXIT
[[ -n $DISK ]] || fail "neither $KEYD_BUILD_DIR nor /var/tmp is on a disk file system"
chmod 0700 "$DISK"

make_token A
write_pin
printf '%s\n' "$SO_PIN" > "$T/sopin"
chmod 0400 "$T/sopin"
printf '%s\n' "$PASS" > "$T/pass"
chmod 0400 "$T/pass"
"$KB" keygen --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
  --type ec:p256 --label sip-tls --id 01 --usage sign >/dev/null 2>"$T/err" ||
  { cat "$T/err" >&2; fail "keygen"; }

create() {
  "$KB" create --module "$M" --token pkcs11:token=A --pin-file "$T/pin" \
    --so-pin-file "$T/sopin" --key 'pkcs11:object=sip-tls' \
    --threshold 2 --shares 3 --iteration-exponent 0 \
    --passphrase-file "$T/pass" "$@"
}

# absent STRING FILE...: STRING is in none of the files.
absent() {
  local s=$1 f; shift
  for f in "$@"; do
    if grep -aqF -- "$s" "$f"; then return 1; fi
  done
}

# 1. Not on tmpfs: refused before anything is written, PDF or not.
expect_fail "keyd-backup: --shares-dir $DISK is not on tmpfs" \
  create --bundle "$T/disk.kbk" --shares-dir "$DISK" --pdf
[[ -z $(ls -A "$DISK") && ! -e $T/disk.kbk ]] || fail "a refused create left files: $(ls -A "$DISK")"
pass "--pdf outside tmpfs without --allow-disk is refused, nothing written"

# 2. create --pdf on tmpfs.
create --bundle "$T/backup.kbk" --shares-dir "$SHARES" --pdf \
  >"$T/create.out" 2>"$T/err" || { cat "$T/err" >&2; fail "create --pdf"; }
mapfile -t pdfs < <(ls "$SHARES"/share-*-g1-m*.pdf)
[[ ${#pdfs[@]} -eq 3 && $(ls "$SHARES" | wc -l) -eq 6 ]] ||
  fail "create --pdf wrote $(ls "$SHARES" | tr '\n' ' '), not 3 text and 3 PDF sheets"
set_id=$(sed -n 's/^bundle .*, backup set \([0-9a-f]\{32\}\)$/\1/p' "$T/create.out")
fp=$(sha256sum "$T/backup.kbk" | cut -d' ' -f1 | sed 's/..../& /g; s/ $//')
[[ -n $set_id ]] || fail "create printed no set id: $(cat "$T/create.out")"
grep -qxF "bundle fingerprint (SHA-256): $fp" "$T/create.out" ||
  fail "create's fingerprint is not the bundle's SHA-256"
for p in "${pdfs[@]}"; do
  grep -qxF "share sheet $p" "$T/create.out" || fail "create did not name $p"
  [[ $(stat -c %a "$p") == 400 ]] || fail "$p has mode $(stat -c %a "$p"), not 0400"
  [[ $(head -c 5 "$p") == %PDF- ]] || fail "$p is not a PDF"
  [[ $(pdfinfo "$p" 2>/dev/null | sed -n 's/^Pages: *//p') == 1 ]] || fail "$p is not one page"
  # Every font is embedded, so that any printer prints the words as drawn
  # (pdffonts: the "emb" column).
  pdffonts "$p" > "$T/fonts" 2>&1 || fail "pdffonts $p: $(cat "$T/fonts")"
  [[ $(tail -n +3 "$T/fonts" | wc -l) -ge 1 ]] || fail "$p has no fonts: $(cat "$T/fonts")"
  tail -n +3 "$T/fonts" | awk '{ if ($(NF-4) != "yes") exit 1 }' ||
    fail "$p has a font that is not embedded: $(cat "$T/fonts")"
done
pass "create --pdf: three one-page PDF sheets beside the text sheets, mode 0400, fonts embedded"

# words FILE: "N word" pairs of the words' table in pdftotext's text, as
# the words in the order of their numbers; fails unless the numbers are
# exactly 1..count, each once.
words() {
  sed -n '/The share: [0-9]* words/,/QR code/{/The share: /d; /QR code/d; p}' "$1" |
    grep -oE '(^|[^0-9a-z])[0-9]{1,2} [a-z]{4,8}\b' | sed 's/^[^0-9]*//' |
    sort -n -k1,1 | awk 'BEGIN { n = 0 }
      { n++; if ($1 != n) exit 1; w = w (n > 1 ? " " : "") $2 }
      END { if (n > 0) print w }'
}

checked=0
for p in "${pdfs[@]}"; do
  txt=${p%.pdf}.txt
  mn=$(sed -n 's/^mnemonic: //p' "$txt")
  [[ $(wc -w <<<"$mn") -eq 33 ]] || fail "$txt holds no 33-word mnemonic"
  b=$T/$(basename "$p" .pdf)

  # pdftotext: the words in order, the set id, the fingerprint.
  pdftotext -layout "$p" "$b.layout.txt"
  pdftotext "$p" "$b.txt"
  got=$(words "$b.layout.txt") || fail "$p: the words' numbers are not 1 to 33 in pdftotext's text"
  [[ $got == "$mn" ]] || fail "$p: pdftotext reads the words as '$got', not the share"
  grep -qF "set-id: $set_id" "$b.layout.txt" || fail "$p: no set id $set_id in pdftotext's text"
  grep -qF "$fp" "$b.layout.txt" || fail "$p: no bundle fingerprint $fp in pdftotext's text"
  grep -qF "passphrase: needed" "$b.layout.txt" || fail "$p: does not say a passphrase is needed"

  # zbarimg: the QR code is exactly the words, single spaces, no newline
  # (zbarimg --raw ends each symbol with one newline). QR codes only: with
  # every symbology on, zbarimg now and then reads a stretch of the printed
  # words as a linear barcode and prints that too.
  pdftoppm -r 150 -gray -png -singlefile "$p" "$b"
  zbarimg --nodbus --raw -q -Sdisable -Sqrcode.enable "$b.png" > "$b.qr" 2>"$T/err" ||
    fail "$p: zbarimg finds no QR code on the page: $(cat "$T/err")"
  printf '%s\n' "$mn" | cmp -s - "$b.qr" ||
    fail "$p: zbarimg reads '$(cat -A "$b.qr")', not exactly the mnemonic followed by one newline"

  # No PIN, SO PIN or passphrase: in the text, the PDF, its streams.
  qpdf --qdf --object-streams=disable "$p" "$b.qdf"
  grep -aq '^BT$' "$b.qdf" || fail "$p: qpdf --qdf shows no text operators; the check would be blind"
  for s in "$PIN" "$SO_PIN" "$PASS"; do
    absent "$s" "$b.txt" "$b.layout.txt" "$p" "$b.qdf" ||
      fail "$p: a PIN or the passphrase is on the sheet"
  done
  checked=$((checked + 1))
done
[[ $checked -eq 3 ]] || fail "checked $checked sheets, not 3"
pass "pdftotext reads the 33 words in order, the set id and the fingerprint"
pass "zbarimg decodes each QR code to exactly the mnemonic"
pass "no PIN and no passphrase in pdftotext's text or the decompressed PDF"

# The judges can fail. Another share's words are not this sheet's; a QR
# code of the words with a newline is not the mnemonic; a file holding
# the PIN is caught; a page without the words has no table.
p=${pdfs[0]}; b=$T/$(basename "$p" .pdf)
other=$(sed -n 's/^mnemonic: //p' "${pdfs[1]%.pdf}.txt")
[[ $(words "$b.layout.txt") != "$other" ]] || fail "judge: share 1's words read as share 2's"
sed 's/^\( *\)1 \([a-z]*\)/\1 2 \2/' "$b.layout.txt" > "$T/renumbered.txt"
if words "$T/renumbered.txt" >/dev/null; then fail "judge: a table with 2 twice passed"; fi
printf '%s\n\n' "$(sed -n 's/^mnemonic: //p' "${p%.pdf}.txt")" | cmp -s - "$b.qr" &&
  fail "judge: a QR code with a newline would pass"
cp "$b.qdf" "$T/leak.qdf"; printf '%s\n' "$PASS" >> "$T/leak.qdf"
if absent "$PASS" "$T/leak.qdf"; then fail "judge: a leaked passphrase was not found"; fi
pass "each judge fails on a sample that must fail it"

# 3. --allow-disk writes PDFs to a disk directory, mode 0400 too.
create --bundle "$T/disk.kbk" --shares-dir "$DISK" --allow-disk --pdf \
  >"$T/create2.out" 2>"$T/err" || { cat "$T/err" >&2; fail "create --pdf --allow-disk"; }
n=0
for p in "$DISK"/share-*.pdf; do
  [[ $(stat -c %a "$p") == 400 ]] || fail "$p has mode $(stat -c %a "$p"), not 0400"
  n=$((n + 1))
done
[[ $n -eq 3 ]] || fail "create --allow-disk --pdf wrote $n PDF sheets, not 3"
pass "--allow-disk: the PDF sheets go to the named disk directory, mode 0400"
