# End-to-end tests of keyd-pkcs11.so with programs this project did not
# write (OpenSC's pkcs11-tool, OpenSSL with libp11's engine or with
# pkcs11-provider, GnuTLS's p11tool) and p11drive, a PKCS#11 application
# of ours that dlopens the module as shipped. Label e2e. Included from
# tests/CMakeLists.txt, so paths are relative to tests/.

add_executable(p11drive e2e/p11drive.c)
target_include_directories(p11drive PRIVATE ${P11KIT_INCLUDE_DIRS})
target_link_libraries(p11drive PRIVATE PkgConfig::LIBCRYPTO Threads::Threads
  ${CMAKE_DL_LIBS})
# The tests load the module: build it with them.
add_dependencies(p11drive keyd-pkcs11)

# A pre-forking server on OpenSSL's ENGINE API (libp11 0.4.12 has no
# provider), as Kamailio's tls module is.
add_executable(engine_fork e2e/engine_fork.c)
target_link_libraries(engine_fork PRIVATE PkgConfig::LIBCRYPTO)

set(KEYD_E2E_TESTS pkcs11_tool openssl_tls gnutls p11_mechs p11_restart
  p11_fork p11_threads engine_fork nginx pkcs11_provider kamailio_shaken
  rotation_nginx rotation_kamailio)
foreach(t ${KEYD_E2E_TESTS})
  keyd_script_test(e2e_${t} e2e/${t}.sh e2e)
endforeach()
# 77: skipped (e2e_nginx needs root, for nginx's user directive, and nginx;
# e2e_pkcs11_provider needs pkcs11-provider, which Debian 12 does not have).
# e2e_kamailio_shaken needs Kamailio and its Python 3 module.
# e2e_rotation_nginx (docs/rotation.md's TLS recipe) needs what e2e_nginx
# does; e2e_rotation_kamailio (the same recipe with Kamailio 5.6's engine
# or Kamailio 6 with keyd.so) needs Kamailio and its tls module.
set_tests_properties(e2e_nginx e2e_pkcs11_provider e2e_kamailio_shaken
  e2e_rotation_nginx e2e_rotation_kamailio PROPERTIES SKIP_RETURN_CODE 77)

# With the sanitizers, programs that were not built with them need the
# ASan runtime preloaded to load the module.
if(KEYD_SANITIZE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE KEYD_ASAN_RUNTIME OUTPUT_STRIP_TRAILING_WHITESPACE)
  foreach(t ${KEYD_E2E_TESTS})
    set_property(TEST e2e_${t} APPEND PROPERTY ENVIRONMENT
      "KEYD_P11_PRELOAD=${KEYD_ASAN_RUNTIME}")
  endforeach()
endif()

# keyd's own OpenSSL 3 provider, keyd.so (client/provider/,
# docs/provider.md): OpenSSL's command-line tools by keyd: URIs.
set(KEYD_PROVIDER_TESTS provider_openssl)
foreach(t ${KEYD_PROVIDER_TESTS})
  keyd_script_test(e2e_${t} e2e/${t}.sh e2e)
  if(KEYD_SANITIZE)
    set_property(TEST e2e_${t} APPEND PROPERTY ENVIRONMENT
      "KEYD_P11_PRELOAD=${KEYD_ASAN_RUNTIME}")
  endif()
endforeach()

# The fork, sibling and restart test program of keyd.so (it loads the
# provider from the build tree through OPENSSL_MODULES).
add_executable(provider_fork e2e/provider_fork.c)
target_link_libraries(provider_fork PRIVATE PkgConfig::LIBCRYPTO
  Threads::Threads)
add_dependencies(provider_fork keyd-provider)
keyd_script_test(e2e_provider_fork e2e/provider_fork.sh e2e)

# Kamailio 6 with keyd.so in the fresh Debian 13 root (77, skipped, where
# Kamailio 6 and its tls module are not installed: Debian 12 has 5.6).
keyd_script_test(e2e_provider_kamailio e2e/provider_kamailio.sh e2e)
set_tests_properties(e2e_provider_kamailio PROPERTIES SKIP_RETURN_CODE 77)
if(KEYD_SANITIZE)
  set_property(TEST e2e_provider_fork e2e_provider_kamailio APPEND PROPERTY
    ENVIRONMENT "KEYD_P11_PRELOAD=${KEYD_ASAN_RUNTIME}")
endif()
