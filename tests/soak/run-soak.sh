#!/usr/bin/env bash
# run-soak.sh: the soak (docs/soak.md). Not part of CI or ctest: it runs
# for minutes.
#
# On a fresh SoftHSM2 token in a temporary directory (keys made by
# keyd-backup keygen), with keyd started from BUILD_DIR (audit log on,
# with a checkpoint key; default settings otherwise):
#   phase 1 (judged on RSS): SOAK_CLIENTS keyd-soak processes send keyd a
#     seeded-random mix of ECDSA P-256, RSA-2048 PKCS#1 and PSS, RSA-OAEP,
#     srtp-new/srtp-open, pubkey, status, list and refusals, reconnecting
#     every so often, for SOAK_SECONDS; keyd's VmRSS, open files and
#     threads are sampled every SOAK_SAMPLE_SECONDS; the audit log is
#     rotated (moved away, then SIGHUP) every SOAK_ROTATE_SECONDS.
#   phase 2 (Ed25519; RSS reported, not judged): a second keyd, started
#     after the first has stopped, with the Ed25519 key 'ed' added to its
#     config, and the same clients with --ed25519 for SOAK_ED25519_SECONDS.
#     SoftHSM2 2.6.1 leaks on every EdDSA operation (FIELD-NOTES), so its
#     RSS is expected to grow; that keyd process is not the one judged.
# Each phase is judged on: zero client errors; keyd alive at the end and
# exiting 0 on SIGTERM; keyd-audit verify passing on every audit file, and
# each rotated file chaining to the next (seq and prev); the audit files
# holding one request line per request the clients sent; keyd's
# open files back to their number before the clients; and, phase 1 only,
# a flat RSS: the mean of the last quarter of the samples may exceed the
# mean of the second quarter (after warm-up) by at most
# max(SOAK_RSS_MAX_KB, SOAK_RSS_MAX_PCT % of that mean).
# Throughput is printed but never judged.
#
# Prints a markdown summary for docs/soak.md on stdout (progress on
# stderr); exits 0 when every check passes, 1 otherwise.
#
# usage: tests/soak/run-soak.sh [BUILD_DIR]   (default: build)
#   SOAK_CLIENTS          client processes (default 8)
#   SOAK_SECONDS          phase 1 length (default 600)
#   SOAK_ED25519_SECONDS  phase 2 length (default 120; 0 skips phase 2)
#   SOAK_SAMPLE_SECONDS   RSS sampling interval (default 10)
#   SOAK_ROTATE_SECONDS   audit log rotation interval (default 60; 0: never):
#                         rotation under load is part of what is soaked.
#   SOAK_SEED             seed; client i uses SEED+i (default: the time)
#   SOAK_RSS_MAX_KB       RSS growth bound, kB (default 1024)
#   SOAK_RSS_MAX_PCT      RSS growth bound, percent (default 5)
#   SOAK_KEEP             1: keep the temporary directory (logs, samples)
#   SOFTHSM_MODULE        default /usr/lib/softhsm/libsofthsm2.so
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_ARG=${1:-build}
BUILD=$(cd "${1:-$SRC/build}" && pwd)
KEYD=$BUILD/keyd/keyd
KEYD_AUDIT=$BUILD/keyd/keyd-audit
KEYD_BACKUP=$BUILD/keyd/keyd-backup
SOAK=$BUILD/tests/soak/keyd-soak
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
CLIENTS=${SOAK_CLIENTS:-8}
SECONDS_1=${SOAK_SECONDS:-600}
SECONDS_2=${SOAK_ED25519_SECONDS:-120}
SAMPLE=${SOAK_SAMPLE_SECONDS:-10}
ROTATE=${SOAK_ROTATE_SECONDS:-60}
SEED=${SOAK_SEED:-$(date +%s)}
RSS_MAX_KB=${SOAK_RSS_MAX_KB:-1024}
RSS_MAX_PCT=${SOAK_RSS_MAX_PCT:-5}
MIN_SAMPLES=8        # fewer than this: too short to judge the RSS
GRACE=120            # seconds a client may overrun its --seconds
TOKEN=soak
PIN=1234

say() { echo "run-soak: $*" >&2; }
for v in CLIENTS SECONDS_1 SECONDS_2 SAMPLE ROTATE SEED RSS_MAX_KB RSS_MAX_PCT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { say "$v must be a whole number, not '${!v}'"; exit 2; }
done
(( CLIENTS >= 1 && SECONDS_1 >= 1 && SAMPLE >= 1 )) ||
  { say "SOAK_CLIENTS, SOAK_SECONDS and SOAK_SAMPLE_SECONDS must be at least 1"; exit 2; }
for f in "$KEYD" "$KEYD_AUDIT" "$KEYD_BACKUP" "$SOAK" "$SOFTHSM_MODULE"; do
  [[ -e $f ]] || { say "$f is missing (build first: cmake --build $BUILD_ARG)"; exit 1; }
done

T=$(mktemp -d /tmp/keyd-soak.XXXXXX)
chmod 755 "$T"
cd "$T"
KEYD_PID= SAMPLER_PID= ROTATOR_PID=
CLIENT_PIDS=()
cleanup() {
  local rc=$? p
  for p in "${CLIENT_PIDS[@]}" $SAMPLER_PID $ROTATOR_PID $KEYD_PID; do
    kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
  done
  if [[ ${SOAK_KEEP:-0} == 1 ]]; then say "kept $T"; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { say "$*"; [[ -f $T/keyd.log ]] && tail -n 20 "$T/keyd.log" >&2; exit 1; }

# ---- the token: keyd-backup keygen, as dev-run.sh makes its keys ----
export SOFTHSM2_CONF=$T/softhsm2.conf
mkdir -p "$T/tokens" "$T/run" "$T/state" "$T/pub"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$T/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label $TOKEN --pin $PIN --so-pin 5678 >/dev/null
printf '%s\n' $PIN > "$T/pin"
chmod 0400 "$T/pin"
kb() { "$KEYD_BACKUP" keygen --module "$SOFTHSM_MODULE" --token "pkcs11:token=$TOKEN" \
  --pin-file "$T/pin" "$@" >/dev/null || die "keyd-backup keygen $*"; }
kb --type ec:p256 --label ec --id 01 --usage sign
kb --type rsa:2048 --label rsa --id 02 --usage sign,decrypt
kb --type aes:256 --label kek --id 03 --usage srtp
kb --type ed25519 --label ed --id 04 --usage sign
kb --type ec:p256 --label audit --id 09 --usage sign
# The reference public keys, read from the token without keyd: the
# clients check that keyd serves these (pkcs11-tool 0.23 cannot export
# Ed25519; GnuTLS's p11tool can).
for k in 01:ec 02:rsa 09:audit; do
  pkcs11-tool --module "$SOFTHSM_MODULE" --token-label $TOKEN --read-object \
    --type pubkey --id "${k%%:*}" -o "$T/pub.der" >/dev/null 2>&1 ||
    die "pkcs11-tool cannot read the public key ${k#*:}"
  openssl pkey -pubin -inform DER -in "$T/pub.der" -out "$T/pub/${k#*:}.pem"
done
ED_PUBDIR=$T/pub
if ! GNUTLS_PIN=$PIN p11tool --provider "$SOFTHSM_MODULE" --export-pubkey \
    "pkcs11:token=$TOKEN;object=ed;type=public" --outfile "$T/pub/ed.pem" >/dev/null 2>&1; then
  say "p11tool cannot export the Ed25519 public key: phase 2 checks keyd's key only"
  ED_PUBDIR=
fi
[[ $(id -u) -eq 0 ]] || export KEYD_DAEMON_USER=$(id -un)

# write_config FILE SOCKET AUDIT_LOG WITH_ED: audit log and checkpoint
# key on; everything else (audit_sync, workers, limits) at its default.
write_config() {
  local ed_keys= ed_section=
  if [[ $4 == 1 ]]; then
    ed_keys=", ed"
    ed_section=$'\n\n[key ed]\nuri = pkcs11:object=ed;type=private\nops = sign'
  fi
  cat > "$1" <<CONF
[keyd]
socket = $2
module = $SOFTHSM_MODULE
token = pkcs11:token=$TOKEN
pin_file = $T/pin
audit_log = $3
audit_key = pkcs11:object=audit;type=private
state_dir = $T/state

[key ec]
uri = pkcs11:object=ec;type=private
ops = sign

[key rsa]
uri = pkcs11:object=rsa;type=private
ops = sign, decrypt

[key kek]
uri = pkcs11:object=kek;type=secret-key
ops = srtp-new, srtp-open$ed_section

[client soak]
uid = $(id -u)
keys = ec, rsa, kek$ed_keys
ops = sign, decrypt, srtp-new, srtp-open, status
CONF
  chmod 0600 "$1"
}

start_keyd() { # CONF LOG
  "$KEYD" -c "$1" > "$2" 2>&1 &
  KEYD_PID=$!
  for _ in $(seq 100); do
    grep -q serving "$2" && return 0
    kill -0 "$KEYD_PID" 2>/dev/null || die "keyd exited at start-up: $(cat "$2")"
    sleep 0.1
  done
  die "keyd did not start within 10 s"
}

proc_val() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$KEYD_PID/status" 2>/dev/null; }
fd_count() { local n; n=$(ls "/proc/$KEYD_PID/fd" 2>/dev/null | wc -l); echo "$n"; }

# sampler OUT: "seconds rss_kb fds threads" every $SAMPLE s while keyd lives.
sampler() {
  local t0=$SECONDS
  while kill -0 "$KEYD_PID" 2>/dev/null; do
    echo "$((SECONDS - t0)) $(proc_val VmRSS) $(fd_count) $(proc_val Threads)" >> "$1"
    sleep "$SAMPLE"
  done
}

# rotator DIR: every $ROTATE s, moves DIR/audit.jsonl to audit.jsonl.NNNNNN
# and sends keyd SIGHUP (which writes a checkpoint to the moved file and
# opens a new one), as logrotate does; stops when DIR/rotate.stop appears,
# never between the move and the signal.
rotator() {
  local dir=$1 k=0 next=$((SECONDS + ROTATE)) f
  while [[ ! -e $dir/rotate.stop ]]; do
    sleep 1
    ((SECONDS >= next)) || continue
    k=$((k + 1))
    f=$(printf '%s/audit.jsonl.%06d' "$dir" "$k")
    mv "$dir/audit.jsonl" "$f"
    kill -HUP "$KEYD_PID" 2>/dev/null || break
    for _ in $(seq 50); do [[ -e $dir/audit.jsonl ]] && break; sleep 0.1; done
    [[ -e $dir/audit.jsonl ]] || { echo "keyd did not reopen its audit log within 5 s of SIGHUP" > "$dir/rotate.err"; break; }
    next=$((SECONDS + ROTATE))
  done
}

# audit_files DIR: the phase's audit files, oldest first.
# (The glob sorts them: the numbers have a fixed width.)
audit_files() {
  local f
  for f in "$1"/audit.jsonl.[0-9]*; do [[ -e $f ]] && echo "$f"; done
  echo "$1/audit.jsonl"
}

# run_phase NAME SECONDS WITH_ED: one keyd, its clients, its checks.
# Sets the P_* results of the phase (P_<name>_<field>) and appends failed
# checks to FAILED.
FAILED=()
run_phase() {
  local name=$1 secs=$2 ed=$3 dir=$T/$1 i rc pid deadline fd0 fd1 status=0
  local -a args
  mkdir -p "$dir"
  write_config "$dir/keyd.conf" "$T/run/$name.sock" "$dir/audit.jsonl" "$ed"
  start_keyd "$dir/keyd.conf" "$dir/keyd.log"
  ln -sf "$dir/keyd.log" "$T/keyd.log"
  sleep 1
  fd0=$(fd_count)
  eval "P_${name}_rss_start=$(proc_val VmRSS)"
  say "$name: keyd $KEYD_PID up, $CLIENTS clients for $secs s (seed $SEED)"
  : > "$dir/rss.txt"
  sampler "$dir/rss.txt" &
  SAMPLER_PID=$!
  if ((ROTATE > 0)); then
    rotator "$dir" &
    ROTATOR_PID=$!
  fi
  args=(--socket "$T/run/$name.sock" --seconds "$secs")
  if [[ $ed == 1 ]]; then
    args+=(--ed25519)
    [[ -n $ED_PUBDIR ]] && args+=(--pubdir "$ED_PUBDIR")
  else
    args+=(--pubdir "$T/pub")
  fi
  CLIENT_PIDS=()
  for ((i = 0; i < CLIENTS; i++)); do
    "$SOAK" "${args[@]}" --seed $((SEED + i)) --id "$name-$i" \
      > "$dir/client-$i.out" 2> "$dir/client-$i.err" &
    CLIENT_PIDS+=($!)
  done
  deadline=$((SECONDS + secs + GRACE))
  for i in "${!CLIENT_PIDS[@]}"; do
    pid=${CLIENT_PIDS[$i]}
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      echo "keyd-soak[$name-$i]: error: still running $GRACE s after its time; killed" >> "$dir/client-$i.err"
    fi
    rc=0; wait "$pid" || rc=$?
    echo "$rc" > "$dir/client-$i.rc"
  done
  CLIENT_PIDS=()
  kill -TERM "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  if [[ -n $ROTATOR_PID ]]; then
    touch "$dir/rotate.stop"
    wait "$ROTATOR_PID" 2>/dev/null || true
    ROTATOR_PID=
  fi

  # Open files: every client connection closed (give keyd 5 s to notice).
  for _ in $(seq 50); do fd1=$(fd_count); ((fd1 <= fd0)) && break; sleep 0.1; done
  eval "P_${name}_fd0=$fd0 P_${name}_fd1=$fd1"
  eval "P_${name}_rss_after=$(proc_val VmRSS) P_${name}_threads=$(proc_val Threads)"
  if kill -0 "$KEYD_PID" 2>/dev/null; then
    eval "P_${name}_alive=yes"
    kill -TERM "$KEYD_PID"
    wait "$KEYD_PID" || status=$?
  else
    eval "P_${name}_alive=no"
    wait "$KEYD_PID" || status=$?
  fi
  KEYD_PID=
  eval "P_${name}_exit=$status"
  say "$name: done; keyd exited with status $status"
}

# ---- phase results ----

# client_sum DIR KEY FIELD: sum of FIELD on lines "KEY ..." of the clients.
client_sum() {
  cat "$1"/client-*.out 2>/dev/null | { awk -v k="$2" -v f="$3" '
    { for (i = 1; i <= NF; i++) if ($i == k) hit = 1 }
    hit { for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == f) s += a[2] } }
    { hit = 0 } END { print s + 0 }'; } || true
}
client_max() {
  cat "$1"/client-*.out 2>/dev/null | { awk -v k="$2" -v f="$3" '
    { for (i = 1; i <= NF; i++) if ($i == k) hit = 1 }
    hit { for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == f && a[2] + 0 > m) m = a[2] + 0 } }
    { hit = 0 } END { printf "%.1f\n", m + 0 }'; } || true
}

# rss_stats FILE: "n first min max last q2 q4 growth slope" over the
# samples taken while the clients ran.
rss_stats() {
  awk -v min="$MIN_SAMPLES" '
    BEGIN { n = 0 }
    NF >= 2 && $2 != "" { t[n] = $1; r[n] = $2; n++ }
    END {
      if (n == 0) { print "0 - - - - - - - -"; exit }
      mn = mx = r[0]
      for (i = 0; i < n; i++) { if (r[i] < mn) mn = r[i]; if (r[i] > mx) mx = r[i] }
      a = int(n / 4); b = int(n / 2); c = int(3 * n / 4)
      if (n < min) { printf "%d %d %d %d %d - - - -\n", n, r[0], mn, mx, r[n-1]; exit }
      for (i = a; i < b; i++) q2 += r[i]; q2 /= (b - a)
      for (i = c; i < n; i++) q4 += r[i]; q4 /= (n - c)
      # least squares over the samples from the second quarter on, kB/min
      for (i = a; i < n; i++) { m++; sx += t[i]; sy += r[i]; sxx += t[i]*t[i]; sxy += t[i]*r[i] }
      d = m * sxx - sx * sx
      slope = d > 0 ? (m * sxy - sx * sy) / d * 60 : 0
      printf "%d %d %d %d %d %.0f %.0f %.0f %.1f\n", n, r[0], mn, mx, r[n-1], q2, q4, q4 - q2, slope
    }' "$1"
}

# judge NAME JUDGE_RSS: the checks of a phase; prints nothing, fills
# FAILED and the J_* variables for the report.
judge() {
  local name=$1 judge_rss=$2 dir=$T/$1 i rc errs=0 q a c v st bound f
  local -a files
  local -n alive=P_${name}_alive ex=P_${name}_exit fd0=P_${name}_fd0 fd1=P_${name}_fd1
  for i in $(seq 0 $((CLIENTS - 1))); do
    rc=$(cat "$dir/client-$i.rc" 2>/dev/null || echo 99)
    [[ $rc == 0 ]] || errs=$((errs + 1))
  done
  eval "J_${name}_failed_clients=$errs"
  [[ $errs == 0 ]] || FAILED+=("$name: $errs of $CLIENTS clients exited non-zero")
  v=$(client_sum "$dir" total err)
  [[ $v == 0 ]] || FAILED+=("$name: $v client errors")
  if [[ $alive != yes ]]; then
    FAILED+=("$name: keyd was not alive at the end (exit status $ex)")
  elif [[ $ex != 0 ]]; then
    FAILED+=("$name: keyd exited with status $ex on SIGTERM")
  fi
  ((fd1 <= fd0)) || FAILED+=("$name: keyd holds $fd1 open files after the clients left, $fd0 before")

  # Every audit file verifies on its own (a rotated one ends with the
  # checkpoint SIGHUP wrote), and each chains to the next: seq goes on by
  # one, prev is the SHA-256 of the last line (checked here by hand, apart
  # from keyd-audit's own check of several files).
  [[ ! -s $dir/rotate.err ]] || FAILED+=("$name: $(cat "$dir/rotate.err")")
  st=0
  : > "$dir/verify.out"
  mapfile -t files < <(audit_files "$dir")
  for f in "${files[@]}"; do
    "$KEYD_AUDIT" verify "$f" --pubkey "$T/pub/audit.pem" >> "$dir/verify.out" 2>&1 || {
      st=$?
      FAILED+=("$name: keyd-audit verify $(basename "$f") exited $st: $(tail -n 1 "$dir/verify.out")")
    }
  done
  for ((i = 1; i < ${#files[@]}; i++)); do
    local last first_prev want_seq first_seq
    last=$(tail -n 1 "${files[i-1]}")
    first_prev=$(head -n 1 "${files[i]}" | grep -o '"prev":"[0-9a-f]*"' | cut -d'"' -f4 || true)
    first_seq=$(head -n 1 "${files[i]}" | grep -o '"seq":[0-9]*' | cut -d: -f2 || true)
    want_seq=$(grep -o '"seq":[0-9]*' <<< "$last" | cut -d: -f2 || true)
    want_seq=$((${want_seq:-0} + 1))
    if [[ $first_prev != "$(printf '%s' "$last" | sha256sum | cut -c1-64)" || $first_seq != "$want_seq" ]]; then
      st=1
      FAILED+=("$name: $(basename "${files[i]}") does not chain to $(basename "${files[i-1]}") (seq $first_seq, want $want_seq, or prev is not the hash of its last line)")
    fi
  done
  eval "J_${name}_verify=$st J_${name}_files=${#files[@]}"
  cat "${files[@]}" | awk '
    /"event":"checkpoint"/ { cp++ }
    /"event":"request"/ { if (match($0, /"op":"[a-z-]+"/)) n[substr($0, RSTART + 6, RLENGTH - 7)]++ }
    END { for (k in n) print k, n[k]; print "(lines)", NR; print "(checkpoints)", cp + 0 }' \
    > "$dir/audit-ops.txt"
  # Every request the clients sent is one request line in the audit log.
  : > "$dir/audit-counts.txt"
  for q in hello list pubkey sign decrypt srtp-new srtp-open status; do
    a=$(awk -v q="$q" '$1 == q { print $2 }' "$dir/audit-ops.txt")
    a=${a:-0}
    c=$(client_sum "$dir" "req=$q" n)
    echo "$q $c $a" >> "$dir/audit-counts.txt"
    [[ $a == "$c" ]] || FAILED+=("$name: the clients sent $c $q requests; the audit log has $a")
  done

  read -r n first mn mx last q2 q4 growth slope < <(rss_stats "$dir/rss.txt")
  eval "J_${name}_rss='$n $first $mn $mx $last $q2 $q4 $growth $slope'"
  if [[ $judge_rss == 1 ]]; then
    if [[ $q2 == - ]]; then
      FAILED+=("$name: $n RSS samples, fewer than $MIN_SAMPLES: too short to judge the RSS (SOAK_SECONDS >= $((MIN_SAMPLES * SAMPLE + SAMPLE)))")
    else
      bound=$(awk -v q="$q2" -v k="$RSS_MAX_KB" -v p="$RSS_MAX_PCT" \
        'BEGIN { b = q * p / 100; if (b < k) b = k; printf "%.0f\n", b }')
      eval "J_${name}_bound=$bound"
      ((growth <= bound)) ||
        FAILED+=("$name: RSS grew by $growth kB (second-quarter mean $q2 kB, last-quarter mean $q4 kB), more than $bound kB")
    fi
  fi
}

MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START_UTC=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
run_phase main "$SECONDS_1" 0
judge main 1
if ((SECONDS_2 > 0)); then
  run_phase ed25519 "$SECONDS_2" 1
  judge ed25519 0
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
END_UTC=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

# ---- the report ----
ROTATED="rotated (move, SIGHUP) every $ROTATE s"
((ROTATE > 0)) || ROTATED="not rotated"
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo '?'; }
phases=(main)
((SECONDS_2 > 0)) && phases+=(ed25519)
ops=(ecdsa-p256 rsa2048-pkcs1 rsa2048-pss rsa2048-oaep srtp-new+open srtp-open-old
  pubkey status list refusal ed25519 reconnect)

cat <<EOF
## Soak run of $START_UTC

- command: \`SOAK_CLIENTS=$CLIENTS SOAK_SECONDS=$SECONDS_1 SOAK_ED25519_SECONDS=$SECONDS_2 SOAK_ROTATE_SECONDS=$ROTATE SOAK_SEED=$SEED tests/soak/run-soak.sh $BUILD_ARG\`
- started $START_UTC, ended $END_UTC
- machine: $(nproc) CPUs, $MODEL; kernel $(uname -r)
- packages: softhsm2 $(ver softhsm2), p11-kit $(ver p11-kit), libssl3 $(ver libssl3)
- load average (1, 5, 15 min): $LOAD_BEFORE before, $LOAD_AFTER after
- keyd: audit log on with a checkpoint key, $ROTATED; audit_sync, workers and limits at their defaults
- phase main: $CLIENTS clients for $SECONDS_1 s, no Ed25519 (keyd's RSS judged)
EOF
((SECONDS_2 > 0)) && echo "- phase ed25519: a second keyd, $CLIENTS clients with --ed25519 for $SECONDS_2 s (RSS reported, not judged: SoftHSM2 2.6.1 leaks on every EdDSA operation)"
echo
printf '| operation |'; for p in "${phases[@]}"; do printf ' %s: ok | errors | ops/s | max ms |' "$p"; done; echo
printf '|---|'; for p in "${phases[@]}"; do printf -- '---:|---:|---:|---:|'; done; echo
for op in "${ops[@]}"; do
  printf '| %s |' "$op"
  for p in "${phases[@]}"; do
    ok=$(client_sum "$T/$p" "op=$op" ok)
    if [[ $op == ed25519 && $p == main ]]; then printf ' — | — | — | — |'; continue; fi
    secs=$SECONDS_1; [[ $p == ed25519 ]] && secs=$SECONDS_2
    printf ' %s | %s | %s | %s |' "$ok" "$(client_sum "$T/$p" "op=$op" err)" \
      "$(awk -v o="$ok" -v s="$secs" 'BEGIN { printf "%.1f", o / s }')" \
      "$(client_max "$T/$p" "op=$op" max_ms)"
  done
  echo
done
printf '| **total** |'
for p in "${phases[@]}"; do
  ok=$(client_sum "$T/$p" total ok)
  secs=$SECONDS_1; [[ $p == ed25519 ]] && secs=$SECONDS_2
  printf ' **%s** | **%s** | **%s** | |' "$ok" "$(client_sum "$T/$p" total err)" \
    "$(awk -v o="$ok" -v s="$secs" 'BEGIN { printf "%.0f", o / s }')"
done
echo
echo
printf '| keyd |'; for p in "${phases[@]}"; do printf ' %s |' "$p"; done; echo
printf '|---|'; for p in "${phases[@]}"; do printf -- '---:|'; done; echo
row() { # LABEL EXPR-per-phase (a function name)
  printf '| %s |' "$1"
  for p in "${phases[@]}"; do printf ' %s |' "$("$2" "$p")"; done
  echo
}
rss_f() { local -n s=J_$1_rss; read -r -a x <<< "$s"; echo "${x[$2]}"; }
r_n() { rss_f "$1" 0; }
r_fmml() { echo "$(rss_f "$1" 1) / $(rss_f "$1" 2) / $(rss_f "$1" 3) / $(rss_f "$1" 4)"; }
r_q() { echo "$(rss_f "$1" 5) → $(rss_f "$1" 6)"; }
r_growth() { echo "$(rss_f "$1" 7)"; }
r_slope() { echo "$(rss_f "$1" 8)"; }
r_bound() {
  if [[ $1 == main ]]; then local -n b=J_main_bound; echo "${b:-n/a}"; else echo "not judged"; fi
}
r_start() { local -n v=P_$1_rss_start; echo "$v"; }
r_after() { local -n v=P_$1_rss_after; echo "$v"; }
r_fds() { local -n a=P_$1_fd0 b=P_$1_fd1; echo "$a → $b"; }
r_threads() { local -n v=P_$1_threads; echo "$v"; }
r_alive() { local -n a=P_$1_alive e=P_$1_exit; echo "$a, exit $e on SIGTERM"; }
r_audit() { awk '$1 == "(lines)" { print $2 }' "$T/$1/audit-ops.txt"; }
r_cp() { awk '$1 == "(checkpoints)" { print $2 }' "$T/$1/audit-ops.txt"; }
r_files() { local -n v=J_$1_files; echo "$v"; }
r_verify() {
  local -n v=J_$1_verify n=J_$1_files
  [[ $v == 0 ]] && echo "all $n verified (0), chained" || echo "FAILED ($v)"
}
r_match() {
  awk '$2 != $3 { bad++ } { n += $2 } END { printf "%s (%d requests)\n", bad ? "NO" : "yes", n }' \
    "$T/$1/audit-counts.txt"
}
row "RSS before the clients, kB" r_start
row "RSS samples (every ${SAMPLE} s, under load)" r_n
row "RSS first / min / max / last, kB" r_fmml
row "RSS mean, second → last quarter, kB" r_q
row "RSS growth, kB" r_growth
row "RSS bound, kB" r_bound
row "RSS trend from the second quarter, kB/min" r_slope
row "RSS after the clients left, kB" r_after
row "open files before → after the clients" r_fds
row "threads" r_threads
row "alive at the end" r_alive
row "audit files" r_files
row "audit lines" r_audit
row "audit checkpoints" r_cp
row "keyd-audit verify" r_verify
row "audit request lines = client requests" r_match
echo
for p in "${phases[@]}"; do
  echo "RSS samples of phase $p (seconds: kB):"
  echo
  echo '```'
  awk '{ sep = "  "; if (NR == 1) sep = ""; else if (NR % 8 == 1) sep = "\n"
         printf "%s%s:%s", sep, $1, $2 } END { print "" }' "$T/$p/rss.txt"
  echo '```'
  echo
done
if ((${#FAILED[@]} == 0)); then
  echo "**Verdict: PASS.** Zero client errors, keyd alive, audit log verified and complete, open files back, RSS flat (growth within max($RSS_MAX_KB kB, $RSS_MAX_PCT %))."
else
  echo "**Verdict: FAIL.**"
  echo
  for f in "${FAILED[@]}"; do echo "- $f"; done
  echo
  for p in "${phases[@]}"; do
    for e in "$T/$p"/client-*.err; do
      [[ -s $e ]] && { echo "$e:"; head -n 5 "$e"; }
    done
    echo "keyd.log of phase $p (last lines):"
    tail -n 10 "$T/$p/keyd.log"
  done | sed 's/^/    /'
fi
((${#FAILED[@]} == 0))
