# Unit tests of the daemon's core modules and the protocol code they
# share (proto/, keyd/): one executable per module. Included from
# tests/CMakeLists.txt, so paths are relative to tests/.
keyd_unit_test(test_kbuf unit/test_kbuf.c LIBS keydcore)
keyd_unit_test(test_frame unit/test_frame.c LIBS keydcore)
keyd_unit_test(test_config unit/test_config.c LIBS keydcore)
keyd_unit_test(test_policy unit/test_policy.c LIBS keydcore)
keyd_unit_test(test_pin unit/test_pin.c LIBS keydcore)
keyd_unit_test(test_secmem unit/test_secmem.c LIBS keydcore)
keyd_unit_test(test_audit unit/test_audit.c LIBS keydcore)
keyd_unit_test(test_shaken unit/test_shaken.c LIBS keydcore)
keyd_unit_test(test_p11 unit/test_p11.c LIBS keydcore)
keyd_unit_test(test_reload unit/test_reload.c LIBS keydcore)
keyd_unit_test(test_cpgate unit/test_cpgate.c LIBS keydcore)
# The socket-facing process's side of the token processes: token_proxy.c,
# which keyd links instead of token.c.
keyd_unit_test(test_token_proxy unit/test_token_proxy.c
  ${PROJECT_SOURCE_DIR}/keyd/daemon/token_proxy.c LIBS keydcommon)
