#!/usr/bin/env bash
# man_pages.sh KEYD KEYDCTL KEYD-BACKUP KEYD-AUDIT
#
# The man pages built in $KEYD_BUILD_DIR/docs/man cannot drift from the
# programs or the configuration reference:
# - every long option a program's --help prints is in its page;
# - every setting in docs/configuration.md's [keyd], [key] and [client]
#   tables is in keyd.conf(5);
# - each page renders with man(1) without an error and has the sections a
#   man page needs;
# - cmake --install puts them where man finds them: man keyd works.
set -uo pipefail

[[ $# -eq 4 ]] || { echo "usage: $0 KEYD KEYDCTL KEYD-BACKUP KEYD-AUDIT" >&2; exit 2; }
: "${KEYD_SOURCE_DIR:?}" "${KEYD_BUILD_DIR:?}"
cmake=${CMAKE_COMMAND:-cmake}
mandir=$KEYD_BUILD_DIR/docs/man
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# man-db drops root to its "man" user to format pages: let it read them.
chmod 0755 "$tmp"
export LC_ALL=C.UTF-8 MANWIDTH=80 MAN_DISABLE_SECCOMP=1
fail=0

bad() {
  echo "FAIL: $*" >&2
  fail=1
}

# The roff source as plain words: "\-" is "-", font changes go.
plain() {
  sed -e 's/\\-/-/g' -e 's/\\f[BIRPC]//g' -e 's/\\f(CW//g' -e 's/\\fR//g' "$1"
}

# has_word FILE WORD: WORD is in FILE, not as part of a longer option.
has_word() {
  grep -qE -- "(^|[^A-Za-z0-9_-])$2([^A-Za-z0-9_-]|$)" "$1"
}

# render PAGE: man -l output, checking the exit status and stderr.
render() {
  local page=$1 out=$2
  if ! man -l "$page" >"$out" 2>"$tmp/render.err"; then
    bad "man -l $(basename "$page") failed: $(head -c 300 "$tmp/render.err")"
  elif [[ -s $tmp/render.err ]]; then
    bad "man -l $(basename "$page") warned: $(head -c 300 "$tmp/render.err")"
  fi
}

# sections PAGE RENDERED SECTION...: each is a heading of the rendered page.
sections() {
  local page=$1 out=$2 s
  shift 2
  for s in "$@"; do
    grep -qxF -- "$s" "$out" || bad "$page: no $s section"
  done
}

for pair in "keyd.8:$1" "keydctl.1:$2" "keyd-backup.1:$3" "keyd-audit.1:$4"; do
  page=${pair%%:*} prog=${pair#*:}
  [[ -s $mandir/$page ]] || { bad "$mandir/$page is missing or empty"; continue; }
  plain "$mandir/$page" >"$tmp/$page.txt"
  {
    "$prog" --help
    if [[ $page == keyd-backup.1 ]]; then
      for cmd in keygen create verify restore drill reshare rekey inspect "shamir split" \
          "shamir combine"; do
        # shellcheck disable=SC2086 # "shamir split" is two words
        "$prog" $cmd --help
      done
    fi
  } >"$tmp/help" 2>&1
  opts=$(grep -oE -- '--[a-z][a-z0-9-]*' "$tmp/help" | sort -u)
  [[ -n $opts ]] || bad "$prog --help lists no long option"
  n=0
  for o in $opts; do
    n=$((n + 1))
    has_word "$tmp/$page.txt" "$o" || bad "$page lacks $o, which $(basename "$prog") --help lists"
  done
  render "$mandir/$page" "$tmp/$page.out"
  sections "$page" "$tmp/$page.out" NAME SYNOPSIS DESCRIPTION OPTIONS \
    "EXIT STATUS" "SEE ALSO"
  [[ $page == keyd-backup.1 ]] || sections "$page" "$tmp/$page.out" FILES
  echo "$page: $n long options of --help, all in the page"
done

# keyd.conf(5): every setting of the settings tables, in its section.
page=keyd.conf.5
conf=$KEYD_SOURCE_DIR/docs/configuration.md
if [[ ! -s $mandir/$page ]]; then
  bad "$mandir/$page is missing or empty"
else
  render "$mandir/$page" "$tmp/$page.out"
  sections "$page" "$tmp/$page.out" NAME SYNOPSIS DESCRIPTION \
    "[keyd] SETTINGS" "[key NAME] SETTINGS" "[client NAME] SETTINGS" FILES \
    "SEE ALSO"
  # section<TAB>setting for each table row whose first cell is `name`,
  # under the "## [section]" headings.
  awk '/^## / { sec = ($2 ~ /^\[/) ? $2 : "" }
       sec != "" && /^\| `[a-z0-9_]+` \|/ {
         split($0, c, "`"); print sec "\t" c[2] }' "$conf" >"$tmp/settings"
  for sec in '[keyd]' '[key' '[client'; do
    grep -qF -- "$sec" "$tmp/settings" || bad "no $sec settings found in $conf"
  done
  n=0
  while IFS=$'\t' read -r sec name; do
    n=$((n + 1))
    # The page's text from the section's heading to the next one.
    sec=${sec%]}
    sed -n "/^${sec//[/\\[}[] ].*SETTINGS\$/,/^[^ ]/p" "$tmp/$page.out" \
      >"$tmp/section"
    grep -qx -- " *$name" "$tmp/section" ||
      bad "$page: $sec] setting $name is not an entry of its section"
  done <"$tmp/settings"
  (( n >= 30 )) || bad "only $n settings found in $conf's tables"
  echo "$page: $n settings of docs/configuration.md, each in its section"
fi

# Installed: cmake --install puts the pages where man finds them.
if ! "$cmake" --install "$KEYD_BUILD_DIR" --component man --prefix "$tmp/usr" \
    >"$tmp/install.log" 2>&1; then
  bad "cmake --install --component man failed: $(tail -n 3 "$tmp/install.log")"
fi
for sp in 8:keyd 1:keydctl 1:keyd-backup 1:keyd-audit 5:keyd.conf; do
  s=${sp%%:*} name=${sp#*:}
  f=$tmp/usr/share/man/man$s/$name.$s
  [[ -s $f ]] || { bad "not installed: share/man/man$s/$name.$s"; continue; }
  if ! MANPATH=$tmp/usr/share/man man "$s" "$name" >"$tmp/man.out" 2>"$tmp/man.err"; then
    bad "man $s $name: $(head -c 300 "$tmp/man.err")"
  fi
  [[ $(head -n 1 "$tmp/man.out") == *"${name^^}($s)"* ]] ||
    bad "man $s $name did not show ${name^^}($s)"
done
MANPATH=$tmp/usr/share/man man keyd >/dev/null 2>&1 || bad "man keyd failed"

[[ $fail -eq 0 ]] && echo "PASS: man pages match --help and docs/configuration.md, and install"
exit $fail
