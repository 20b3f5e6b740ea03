#!/usr/bin/env bash
# Does keyd build, run and pass its tests on a freshly installed Debian
# machine? The test command (scripts/test.sh) runs it for Debian 12 and 13,
# as the ctest tests fresh_debian12 and fresh_debian13 (tests/fresh/), and
# it can be run by hand:
#
#   bash scripts/fresh-machine.sh [RELEASE]        (as root; default bookworm)
#
# It builds a minimal root filesystem of RELEASE with mmdebstrap
# (--variant=apt, the Essential packages and apt, plus git and
# ca-certificates), from this machine's apt sources and Acquire settings,
# so it needs no other network access than the package mirror apt uses
# here. It clones this checkout's HEAD into /root/keyd there: the committed
# state only, uncommitted changes are not in the clone. Then, chrooted into
# it inside a private mount namespace and a PID namespace, so that no mount
# and no process outlives the check:
#   1. the README's run command (bash scripts/dev-run.sh), until
#      `keydctl -s run/keyd.sock status` answers; then SIGTERM, and keyd
#      must exit with status 0 and log its stop in run/audit.jsonl;
#   2. the README's test command, with the normal build only and without
#      the fresh roots: bash scripts/test.sh --no-sanitizers --no-fresh-roots.
# The chroot has its own /dev (a tmpfs with the usual device nodes, its own
# devpts and /dev/shm), a tmpfs /tmp and /run, and a policy-rc.d that keeps
# package scripts from starting services (there is no init to run them): a
# daemon's /dev/log made there is not the host's. The logs are kept in the
# work directory it prints: its own output (fresh-machine.log, with the
# time of each step), mmdebstrap.log, dev-run.log and test.log (the inner
# ctest's whole output; on a failure the failed tests' output is printed
# too); the root filesystem (a few GB) is removed at the end, unless
# KEYD_FRESH_KEEP=1.
#
# Exit status: 0 if every step passed; 77 if it cannot run here (not root,
# mmdebstrap missing and not installable, or not in a git checkout), which
# ctest counts as skipped; 1 if a step failed.
#
# Environment: KEYD_FRESH_DIR (where the work directory goes, default
# /var/tmp), KEYD_FRESH_SERVE_TIMEOUT (seconds for step 1, default 600: it
# installs the packages and builds), KEYD_FRESH_TEST_TIMEOUT (seconds for
# step 2, default 7200).
set -euo pipefail

release=${1:-bookworm}
parent=${KEYD_FRESH_DIR:-/var/tmp}
serve_timeout=${KEYD_FRESH_SERVE_TIMEOUT:-600}
test_timeout=${KEYD_FRESH_TEST_TIMEOUT:-7200}

say() { printf 'fresh-machine: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
skip() { say "cannot run here: $*"; exit 77; }

[[ $# -le 1 && $release =~ ^[a-z][a-z0-9-]*$ ]] ||
  die "usage: bash scripts/fresh-machine.sh [RELEASE] (a Debian release name, default bookworm)"
if [[ $(id -u) -ne 0 ]]; then
  skip "run this as root (it runs mmdebstrap, chroot and mount)"
fi
top=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel 2>/dev/null) ||
  skip "$(cd "$(dirname "$0")/.." && pwd) is not a git checkout (this clones its HEAD)"

# This machine's Debian sources, for RELEASE: the deb entries of the host's
# own release and of its -updates and -security suites, with the release
# name replaced; other repositories are left out. Lines of
# "URI<TAB>SUITE<TAB>COMPONENTS<TAB>[OPTIONS]", then sources.list lines.
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '$1 == "deb" {
      opts = ""; i = 2
      if ($2 ~ /^\[/) {
        while (i < NF && $i !~ /\]$/) { opts = opts $i " "; i++ }
        opts = opts $i; i++
      }
      comps = $(i + 2)
      for (j = i + 3; j <= NF; j++) comps = comps " " $j
      printf "%s\t%s\t%s\t%s\n", $i, $(i + 1), comps, opts
    }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
    {
      types = uris = suites = comps = signed = ""; enabled = "yes"
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^#/ || $i ~ /^[ \t]/ || index($i, ":") == 0) continue
        k = tolower(substr($i, 1, index($i, ":") - 1))
        v = substr($i, index($i, ":") + 1); gsub(/^[ \t]+|[ \t]+$/, "", v)
        if (k == "types") types = v; else if (k == "uris") uris = v
        else if (k == "suites") suites = v; else if (k == "components") comps = v
        else if (k == "signed-by") signed = v; else if (k == "enabled") enabled = v
      }
      if (tolower(enabled) == "no" || (" " types " ") !~ / deb /) next
      nu = split(uris, u, " "); ns = split(suites, s, " ")
      for (a = 1; a <= nu; a++)
        for (b = 1; b <= ns; b++)
          printf "%s\t%s\t%s\t%s\n", u[a], s[b], comps,
            (signed ~ /^\// ? "[signed-by=" signed "]" : "")
    }' "$f"
  done
}
make_sources() {
  local host=$1 want=$2 uri suite comps opts tail
  host_sources | while IFS=$'\t' read -r uri suite comps opts; do
    case $suite in
      "$host") tail= ;;
      "$host"-updates | "$host"-security) tail=-${suite#"$host"-} ;;
      *) continue ;;
    esac
    # unstable has no -updates or -security suite.
    [[ -n $tail && $want =~ ^(sid|unstable|experimental)$ ]] && continue
    printf 'deb %s%s %s %s\n' "${opts:+$opts }" "$uri" "$want$tail" "$comps"
  done | awk '!seen[$0]++'
}

# This machine's Acquire settings (proxies, validity checks of the mirror's
# Release files): the apt.conf files that set any, for the rootfs's apt.
apt_opts() {
  local f
  for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
    [[ -f $f ]] || continue
    case ${f##*/} in
      *.dpkg-* | *.ucf-* | *~ | *.bak | *.save | *.orig | *.disabled*) continue ;;
    esac
    grep -qE '^[[:space:]]*Acquire' "$f" && printf -- '--aptopt=%s\n' "$f"
  done
  return 0
}

# stamp LOG STEPS ERE: copies its input to LOG, and to STEPS the first line
# that matches ERE for each text its first group captures, after the
# seconds since it started: the steps of dev-run.sh and test.sh. Only the
# first of each, and only the steps the caller names: a failed test's
# output, printed by ctest, repeats keyd's log lines.
stamp() {
  local line word t0=$SECONDS
  local -A seen=()
  while IFS= read -r line || [[ -n $line ]]; do
    printf '%s\n' "$line"
    if [[ $line =~ $3 ]]; then
      word=${BASH_REMATCH[1]}
      if [[ -z ${seen[$word]:-} ]]; then
        seen[$word]=1
        printf '%5d s  %s\n' $((SECONDS - t0)) "$line" >>"$2"
      fi
    fi
  done >"$1"
}

# The output of each failed test in a ctest log (ctest --output-on-failure
# prints it after the test's result line), at most 150 lines each.
failed_output() {
  awk '/^ *Start +[0-9]+: |^ *[0-9]+\/[0-9]+ Test +#|tests passed, / { on = 0 }
    /^ *[0-9]+\/[0-9]+ Test +#.*\*\*\*/ && !/\*\*\*Skipped/ { on = 1; n = 0 }
    on && n++ < 150 { print }' "$1"
}

# The checks run here, as PID 1 of a new PID namespace with a private mount
# namespace: the mounts and every process started below end with it.
inside() {
  local R=$1 logs=$2 serve_timeout=$3 test_timeout=$4 n major minor pid rc deadline
  local -a env=(env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
  for n in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [[ -n ${!n:-} ]]; then env+=("$n=${!n}"); fi
  done

  mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
  mount -t tmpfs -o nosuid,mode=0755,size=16m dev "$R/dev"
  while read -r n major minor; do
    mknod -m 0666 "$R/dev/$n" c "$major" "$minor"
  done <<'NODES'
null 1 3
zero 1 5
full 1 7
random 1 8
urandom 1 9
tty 5 0
NODES
  mkdir "$R/dev/pts" "$R/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
  mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$R/dev/shm"
  ln -s pts/ptmx "$R/dev/ptmx"
  ln -s /proc/self/fd "$R/dev/fd"
  ln -s /proc/self/fd/0 "$R/dev/stdin"
  ln -s /proc/self/fd/1 "$R/dev/stdout"
  ln -s /proc/self/fd/2 "$R/dev/stderr"
  mount -t tmpfs -o nosuid,nodev,mode=1777 tmp "$R/tmp"
  mount -t tmpfs -o nosuid,nodev,mode=0755 run "$R/run"

  say "[4/5] the run command: bash scripts/dev-run.sh, until keydctl status answers (log: $logs/dev-run.log)"
  local t0=$SECONDS out stamper last2
  # Its output goes through stamp, a process substitution: as the last
  # element of a background pipeline, bash here (PID 1) would not wait
  # for dev-run.sh by its pid. SIGTERM stops it below: a background job
  # ignores SIGINT.
  exec {out}> >(stamp "$logs/dev-run.log" "$logs/dev-run.steps" \
    '^keyd: (installing|building|creating|reusing|serving) ')
  stamper=$!
  chroot "$R" "${env[@]}" /bin/bash -c 'cd /root/keyd && exec bash scripts/dev-run.sh' \
    </dev/null >&"$out" 2>&1 &
  pid=$!
  exec {out}>&-
  deadline=$((SECONDS + serve_timeout))
  # Alive: not gone and not a zombie (the proc mounted in the rootfs has
  # this namespace's process ids).
  alive() { [[ $(cut -d' ' -f3 "$R/proc/$1/stat" 2>/dev/null) =~ ^[^ZX]$ ]]; }
  until chroot "$R" "${env[@]}" /bin/bash -c \
    'cd /root/keyd && keydctl -s run/keyd.sock status' >"$logs/status.out" 2>&1; do
    if ! alive "$pid"; then
      rc=0; wait "$pid" || rc=$?; wait "$stamper" || true
      tail -n 30 "$logs/dev-run.log" >&2
      say "dev-run.sh exited with status $rc before keyd served"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      kill -TERM "$pid" 2>/dev/null || true
      tail -n 30 "$logs/dev-run.log" >&2
      say "keyd did not serve within $serve_timeout s"
      return 1
    fi
    sleep 2
  done
  say "keyd serves after $((SECONDS - t0)) s; dev-run.sh's steps, and keydctl status:"
  sed 's/^/  /' "$logs/dev-run.steps" "$logs/status.out" >&2
  kill -TERM "$pid"
  for ((n = 0; n < 60; n++)); do alive "$pid" || break; sleep 1; done
  if alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    say "keyd did not stop within 60 s of SIGTERM"
    return 1
  fi
  rc=0; wait "$pid" || rc=$?; wait "$stamper" || true
  if [[ $rc -ne 0 ]]; then
    tail -n 30 "$logs/dev-run.log" >&2
    say "keyd exited with status $rc on SIGTERM"
    return 1
  fi
  # A clean stop writes the stop record, then (with the dev token's audit
  # key) a checkpoint signed "stop"; the dev log must then verify.
  if ! last2=$(tail -n 2 "$R/root/keyd/run/audit.jsonl") || ! grep -q '"event":"stop"' <<<"$last2"; then
    say "keyd exited, but its last audit records are not its stop: $(tail -n 2 "$R/root/keyd/run/audit.jsonl")"
    return 1
  fi
  if ! chroot "$R" "${env[@]}" /usr/local/bin/keyd-audit verify /root/keyd/run/audit.jsonl \
      --pubkey /root/keyd/run/audit.pem > "$logs/verify.log" 2>&1; then
    cat "$logs/verify.log" >&2
    say "the dev audit log does not verify after a clean stop"
    return 1
  fi
  say "keyd stopped cleanly on SIGTERM (status 0, stop record in run/audit.jsonl, which keyd-audit verifies)"

  say "[5/5] the test command: bash scripts/test.sh --no-sanitizers --no-fresh-roots (log: $logs/test.log)"
  t0=$SECONDS
  rc=0
  timeout --kill-after=60 "$test_timeout" chroot "$R" "${env[@]}" /bin/bash -c \
    'cd /root/keyd && bash scripts/test.sh --no-sanitizers --no-fresh-roots' \
    </dev/null 2>&1 |
    stamp "$logs/test.log" "$logs/test.steps" '^keyd: (installing|building|running) ' || rc=$?
  # test.sh's steps, the ctest summary, and the tests that failed.
  { cat "$logs/test.steps" 2>/dev/null
    grep -E 'tests passed|^[[:space:]]+[0-9]+ - .*\((Failed|Timeout|Not Run|SEGFAULT|Subprocess|Exception)' \
      "$logs/test.log"; } | sed 's/^/  /' >&2 || true
  if [[ $rc -ne 0 ]]; then
    if [[ -n $(failed_output "$logs/test.log") ]]; then
      say "the failed tests' output:"
      failed_output "$logs/test.log" >&2
    else
      say "the end of test.log:"
      tail -n 40 "$logs/test.log" >&2
    fi
  fi
  ((rc != 124)) || say "test.sh did not finish within $test_timeout s"
  say "test.sh took $((SECONDS - t0)) s and exited with status $rc"
  return $((rc != 0))
}

start=$SECONDS
host=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
[[ -n $host ]] || die "/etc/os-release names no release (VERSION_CODENAME): cannot map its apt sources"
head=$(git -C "$top" rev-parse HEAD)
dirty=$(git -C "$top" status --porcelain --untracked-files=no | wc -l)
work=
result=failed

finish() {
  local rc=$?
  if [[ -n $work && -d $work/rootfs ]]; then
    if grep -qF " $work/rootfs" /proc/self/mountinfo; then
      say "something is still mounted under $work/rootfs: not removing it"
    elif [[ ${KEYD_FRESH_KEEP:-0} == 1 ]]; then
      say "kept the root filesystem in $work/rootfs (KEYD_FRESH_KEEP=1)"
    else
      rm -rf --one-file-system "$work/rootfs"
    fi
  fi
  [[ -n $work ]] && say "logs: $work"
  if [[ $rc -eq 0 ]]; then result=passed; elif [[ $rc -eq 77 ]]; then result=skipped; fi
  say "$release: $result after $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! command -v mmdebstrap >/dev/null; then
  say "[1/5] installing mmdebstrap"
  if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      mmdebstrap >/dev/null; then
    skip "mmdebstrap is not installed, and apt-get cannot install it"
  fi
else
  say "[1/5] mmdebstrap is installed"
fi

mkdir -p "$parent"
work=$(mktemp -d "$parent/keyd-fresh-$release.XXXXXX")
# This script's own output goes to the work directory too: under ctest,
# which shows it only on a failure, the step times stay there.
exec 2> >(tee -a "$work/fresh-machine.log" >&2)
R=$work/rootfs
make_sources "$host" "$release" >"$work/sources.list"
[[ -s $work/sources.list ]] ||
  die "no deb entry for '$host' in /etc/apt/sources.list or /etc/apt/sources.list.d"
mapfile -t aptopts < <(apt_opts)

say "[2/5] building a minimal $release root filesystem in $R (log: $work/mmdebstrap.log), from:"
sed 's/^/  /' "$work/sources.list" >&2
t0=$SECONDS
# Its own mount namespace: mmdebstrap mounts /proc, /dev and /sys in the
# root filesystem while it installs, and none of that may stay behind.
if ! unshare --mount --propagation private -- \
  mmdebstrap --variant=apt --include=git,ca-certificates "${aptopts[@]}" \
  "$release" "$R" "$work/sources.list" >"$work/mmdebstrap.log" 2>&1; then
  tail -n 30 "$work/mmdebstrap.log" >&2
  die "mmdebstrap failed"
fi
say "root filesystem ready after $((SECONDS - t0)) s: $(du -sh --one-file-system "$R" | cut -f1)"

# What a freshly installed machine has and the bootstrap leaves out: the
# host's name resolution (to reach the mirror), and no service starts
# from a package script (no init runs in the chroot).
cp -L /etc/resolv.conf "$R/etc/resolv.conf"
[[ -s $R/etc/hosts ]] || cp -L /etc/hosts "$R/etc/hosts"
printf '#!/bin/sh\n# fresh-machine.sh: no init runs here; start no service.\nexit 101\n' \
  >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"

say "[3/5] cloning HEAD $(git -C "$top" log -1 --format='%h %s' "$head") into /root/keyd"
if ((dirty > 0)); then
  say "  (the committed state only: $dirty files with uncommitted changes in $top are not in it)"
fi
git clone --quiet --no-hardlinks "$top" "$R/root/keyd"
git -C "$R/root/keyd" checkout --quiet --detach "$head"

export -f inside say stamp failed_output
unshare --mount --propagation private --pid --fork --kill-child -- \
  bash -c 'set -euo pipefail; inside "$@"' inside "$R" "$work" "$serve_timeout" "$test_timeout"
