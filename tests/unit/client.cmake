# Tests of the client side (client/): libkeyd against a fake keyd, and
# keydctl refusing a socket served by an untrusted uid. Included from
# tests/CMakeLists.txt, so paths are relative to tests/.

keyd_unit_test(test_libkeyd unit/test_libkeyd.c
  LIBS keydclient Threads::Threads)
# test_libkeyd also checks the transport module's peer and user checks.
target_include_directories(test_libkeyd PRIVATE ${PROJECT_SOURCE_DIR}/client)

# A stand-in daemon for script tests of the client's own checks.
add_executable(fake_server integration/fake_server.c)
target_link_libraries(fake_server PRIVATE keydproto PkgConfig::LIBCRYPTO)

keyd_script_test(untrusted_peer integration/untrusted_peer.sh integration)
# 77: skipped (it needs root to run the fake server as nobody).
set_tests_properties(untrusted_peer PROPERTIES SKIP_RETURN_CODE 77)

# keydctl end to end against fake_server signing with real OpenSSL keys:
# every -a ALG, checked with openssl dgst / pkeyutl -verify.
keyd_script_test(keydctl_fake integration/keydctl_fake.sh integration)
