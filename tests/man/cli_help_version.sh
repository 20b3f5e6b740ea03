#!/usr/bin/env bash
# cli_help_version.sh VERSION KEYD KEYDCTL KEYD-BACKUP KEYD-AUDIT
#
# Every program answers --help and --version the same way: on standard
# output, nothing on standard error, exit 0; --version prints
# "<program> <version>". So do keyd-backup's commands and keyd-audit verify
# with --help.
set -uo pipefail

[[ $# -eq 5 ]] || { echo "usage: $0 VERSION KEYD KEYDCTL KEYD-BACKUP KEYD-AUDIT" >&2; exit 2; }
version=$1
keyd=$2 keydctl=$3 backup=$4 audit=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

bad() {
  echo "FAIL: $*" >&2
  fail=1
}

# run NAME ARGS...: runs the program, checks exit 0, output on stdout only.
run() {
  local what="$1 ${*:3}" rc
  "$2" "${@:3}" >"$tmp/out" 2>"$tmp/err" </dev/null
  rc=$?
  [[ $rc -eq 0 ]] || bad "$what: exit $rc, not 0"
  [[ -s $tmp/out ]] || bad "$what: nothing on standard output"
  [[ ! -s $tmp/err ]] || bad "$what: wrote to standard error: $(head -c 200 "$tmp/err")"
}

for pair in "keyd:$keyd" "keydctl:$keydctl" "keyd-backup:$backup" \
    "keyd-audit:$audit"; do
  name=${pair%%:*} prog=${pair#*:}
  run "$name" "$prog" --version
  got=$(cat "$tmp/out")
  [[ $got == "$name $version" ]] ||
    bad "$name --version printed '$got', not '$name $version'"
  run "$name" "$prog" --help
  grep -q "usage" "$tmp/out" || bad "$name --help: no usage in its output"
  run "$name" "$prog" -h
done

for cmd in keygen create verify restore drill reshare rekey inspect "shamir split" \
    "shamir combine"; do
  # shellcheck disable=SC2086 # "shamir split" is two words
  run keyd-backup "$backup" $cmd --help
  grep -q "^usage: keyd-backup $cmd " "$tmp/out" ||
    bad "keyd-backup $cmd --help: not its usage line"
done
run keyd-audit "$audit" verify --help
run keydctl "$keydctl" sign --help

# --version where a command would go is not an unknown option any more.
run keydctl "$keydctl" list --version
[[ $(cat "$tmp/out") == "keydctl $version" ]] || bad "keydctl list --version"

[[ $fail -eq 0 ]] && echo "PASS: --help and --version of keyd, keydctl, keyd-backup, keyd-audit"
exit $fail
