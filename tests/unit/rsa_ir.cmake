# RSA PKCS#1 v1.5 decryption with implicit rejection (keyd/daemon/rsa_ir.c).
# Included from tests/CMakeLists.txt: paths are relative to tests/.

# The decoding itself, against OpenSSL's implicit-rejection vectors and
# OpenSSL 3.0's PKCS#1 v1.5 decryption.
keyd_unit_test(test_rsa_ir unit/test_rsa_ir.c LIBS keydcore)

# Wycheproof's rsa_pkcs1_2048_test.json through the real keyd and SoftHSM2.
add_executable(rsa_pkcs1_vectors integration/rsa_pkcs1_vectors.c)
target_link_libraries(rsa_pkcs1_vectors PRIVATE keydclient PkgConfig::JSONC
  PkgConfig::LIBCRYPTO)
keyd_script_test(rsa_pkcs1 integration/rsa_pkcs1.sh integration)
