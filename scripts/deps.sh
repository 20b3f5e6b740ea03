#!/usr/bin/env bash
# Installs, with apt-get, every Debian package keyd's build, run and tests
# use, if any is missing. Safe to run again: it does nothing when all are
# present. It knows Debian 12 (bookworm) and Debian 13 (trixie), and picks
# the list by the release that /etc/os-release names (VERSION_CODENAME),
# not by trying names until one installs. The lists cover what a minimal
# system (mmdebstrap --variant=apt: the Essential packages and apt) lacks;
# scripts/fresh-machine.sh checks that on a new root filesystem of each.
set -euo pipefail

# Names that both releases have.
PACKAGES=(
  build-essential cmake pkg-config
  # clang only builds the optional libFuzzer targets (docs/fuzzing.md);
  # clang 19 and its libFuzzer are in both releases
  clang-19 libclang-rt-19-dev
  libssl-dev openssl
  libp11-kit-dev p11-kit
  libprotobuf-c-dev protobuf-c-compiler
  libinih-dev libjson-c-dev libseccomp-dev
  softhsm2 opensc gnutls-bin
  libp11-dev libengine-pkcs11-openssl
  libsrtp2-dev
  # setpriv, prlimit (tests/integration)
  util-linux procps
  # mount and umount: not in util-linux (tests/integration/audit.sh)
  mount
  # xxd -r -p: not in vim's packages (tests/fuzz/setup_token.sh)
  xxd
  # perl -MDigest::SHA: perl-base lacks the module (tests/integration/audit.sh)
  perl
  # jq: the seed generator tests/fuzz/make_seeds.sh reads the SLIP-0039 vectors
  jq
  # PyJWT, the independent JWS implementation that makes the PASSporTs
  # of tests/integration/passport_verify.sh and checks keyd's (passport.sh,
  # python.sh), with python3-cryptography, which also reads certificates
  # and verifies signatures there (Debian's /usr/bin/python3)
  python3-jwt python3-cryptography
  # Kamailio with its Python 3 KEMI module (app_python3): the session
  # controller of tests/e2e/kamailio_shaken.sh, run privately on
  # 127.0.0.1; a system kamailio service that the package may start is
  # never used or touched
  kamailio kamailio-python3-modules
  # rsyslogd, which tests run privately: they need no rsyslog service
  rsyslog
  # nginx (with the ssl module) and curl: tests/e2e/nginx.sh runs its own
  # nginx (-p/-c in its temporary directory, 127.0.0.1 on a high port); a
  # system nginx that the package may start on port 80 is never used or
  # touched
  nginx curl
  # lowdown makes the man pages (docs/man); man renders them (tests/man)
  lowdown man-db
  # keyd-backup's PDF share sheets: cairo draws them, libqrencode makes
  # the QR code, DejaVu is the font embedded (keyd/backup/backup_pdf.c); the
  # tests read them back with poppler-utils (pdftotext, pdftoppm),
  # zbar-tools (zbarimg) and qpdf (tests/integration/backup_pdf.sh)
  libcairo2-dev libqrencode-dev fonts-dejavu-core
  poppler-utils zbar-tools qpdf
  # A TPM 2.0 for the tests (tests/tokens/tpm2.sh): swtpm, tpm2-abrmd on a
  # private D-Bus bus, and tpm2-pkcs11 with tpm2_ptool (Python, which
  # calls tpm2-tools); the test runs its own, and never the system's
  # services that the packages may enable
  swtpm tpm2-abrmd libtss2-tcti-tabrmd0 libtpm2-pkcs11-1
  libtpm2-pkcs11-tools tpm2-tools dbus-daemon dbus-bin python3
  # opencryptoki's soft token (tests/tokens/opencryptoki.sh runs its
  # pkcsslotd in private namespaces)
  opencryptoki
)

release=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
case $release in
  bookworm)
    # Kamailio 5.6's tls module: tests/e2e/rotation_kamailio.sh runs
    # docs/rotation.md's TLS recipe with it, its key through libp11's
    # engine and keyd-pkcs11.so (trixie's list below has it for Kamailio 6)
    PACKAGES+=(kamailio-tls-modules)
    ;;
  trixie)
    # The OpenSSL 3 provider for PKCS#11 (tests/e2e/pkcs11_provider.sh);
    # Debian 12 has no such package, and there the engine is the tested path.
    PACKAGES+=(pkcs11-provider)
    # Kamailio 6 and its tls module, which load keys through OpenSSL 3
    # providers (tests/e2e/provider_kamailio.sh; Debian 12's Kamailio 5.6
    # has no provider support)
    PACKAGES+=(kamailio kamailio-tls-modules)
    ;;
  *)
    echo "keyd: scripts/deps.sh knows Debian 12 (bookworm) and Debian 13 (trixie);" \
      "/etc/os-release names '${release:-no release}' (VERSION_CODENAME)." \
      "Install the packages it lists for the nearest of those by hand." >&2
    exit 1
    ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  if ! pkg_status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || ! grep -q "ok installed" <<<"$pkg_status"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "keyd: missing packages: ${missing[*]}; run this as root to install them" >&2
    exit 1
  fi
  echo "keyd: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
