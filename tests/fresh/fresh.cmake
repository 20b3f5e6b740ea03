# The fresh-machine tests: scripts/fresh-machine.sh for Debian 12 (bookworm)
# and Debian 13 (trixie), each in a minimal root filesystem that mmdebstrap
# builds from this machine's apt configuration, with the committed HEAD.
# Included from tests/CMakeLists.txt. Only with KEYD_FRESH_ROOTS=ON, which
# scripts/test.sh sets for build/ unless given --no-fresh-roots.
#
# Each takes several minutes and both CPUs of a small machine, so each runs
# alone (RUN_SERIAL). Not root, or no mmdebstrap that apt-get can install:
# fresh-machine.sh exits 77 and ctest counts the test as skipped. Their own
# output stays in the work directory fresh-machine.sh names
# (/var/tmp/keyd-fresh-RELEASE.*); ctest shows it when one fails, with the
# failed inner tests' output.
#
# The step limits inside (keyd serving: packages, build, token; then the
# test command) end fresh-machine.sh, which then removes its root
# filesystem, before ctest's TIMEOUT would kill it and leave the root behind.

option(KEYD_FRESH_ROOTS
  "ctest also runs the suite in fresh Debian 12 and 13 root filesystems (root, network)" OFF)

if(KEYD_FRESH_ROOTS)
  foreach(r 12:bookworm 13:trixie)
    string(REPLACE ":" ";" r ${r})
    list(GET r 0 version)
    list(GET r 1 release)
    add_test(NAME fresh_debian${version}
      COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/fresh-machine.sh ${release}
      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(fresh_debian${version} PROPERTIES LABELS fresh
      RUN_SERIAL TRUE TIMEOUT 1200 SKIP_RETURN_CODE 77
      ENVIRONMENT "KEYD_FRESH_SERVE_TIMEOUT=480;KEYD_FRESH_TEST_TIMEOUT=600")
  endforeach()
endif()
