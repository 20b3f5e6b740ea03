# Integration tests: the real daemon against a real SoftHSM2 token made in
# a temporary directory, with keys made by pkcs11-tool and results judged
# by OpenSSL, GnuTLS and the raw protocol client kd_raw.
add_executable(kd_raw ${CMAKE_CURRENT_SOURCE_DIR}/integration/kd_raw.c)
target_link_libraries(kd_raw PRIVATE keydproto)

keyd_script_test(hardening integration/hardening.sh integration)
keyd_script_test(audit integration/audit.sh integration)
keyd_script_test(limits integration/limits.sh integration)
