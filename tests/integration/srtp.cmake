# SRTP master keys (srtp-new, srtp-open; docs/srtp.md): the real daemon
# against a SoftHSM2 token, checked through libkeyd (srtp_check, which also
# opens blobs on its own per the documented format) and keydctl, and end to
# end with libsrtp2 as sender and receiver. Included from
# tests/CMakeLists.txt, so paths are relative to tests/.

add_executable(srtp_check integration/srtp_check.c)
target_link_libraries(srtp_check PRIVATE keydclient PkgConfig::LIBCRYPTO)

keyd_script_test(srtp integration/srtp.sh integration)
keyd_script_test(srtp_rotate integration/srtp_rotate.sh integration)
keyd_script_test(srtp_limit integration/srtp_limit.sh integration)
keyd_script_test(srtp_policy integration/srtp_policy.sh integration)
# 77: skipped (it needs root to run a second client as nobody).
set_tests_properties(srtp_policy PROPERTIES SKIP_RETURN_CODE 77)

# Debian's libsrtp2-dev (scripts/deps.sh installs it): required, so that
# the end-to-end test can never silently drop out of the suite.
pkg_check_modules(LIBSRTP2 REQUIRED IMPORTED_TARGET libsrtp2)
add_executable(srtp_libsrtp e2e/srtp_libsrtp.c)
target_link_libraries(srtp_libsrtp PRIVATE PkgConfig::LIBSRTP2
  PkgConfig::LIBCRYPTO)
keyd_script_test(srtp_libsrtp integration/srtp_libsrtp.sh e2e)
