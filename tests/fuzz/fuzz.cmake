# The fuzz targets (docs/fuzzing.md). Included from tests/CMakeLists.txt, so
# paths are relative to tests/.
#
# Every build makes each target with replay_main.c, a plain main that runs
# it once on each file of its corpus in the tree, and ctest does that in
# every run (label fuzz), so that a crash once found stays fixed.
# KEYD_FUZZ=ON (clang only) also makes the libFuzzer versions, with
# AddressSanitizer and UndefinedBehaviorSanitizer, and instruments keydcore
# and keydproto, the libraries the targets drive, for coverage.

set(FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(FUZZ_TARGETS frame_dispatch slip39 bundle config passport)
# fuzz_frame_dispatch sets up the daemon's token, audit log and dispatcher.
set(FUZZ_EXTRA_frame_dispatch ${FUZZ_DIR}/fuzz_env.c)

foreach(t IN LISTS FUZZ_TARGETS)
  add_executable(fuzz_${t}_replay ${FUZZ_DIR}/fuzz_${t}.c
    ${FUZZ_EXTRA_${t}} ${FUZZ_DIR}/replay_main.c)
  target_link_libraries(fuzz_${t}_replay PRIVATE keydcore keydpassport)
  if(t STREQUAL "frame_dispatch")
    # The dispatcher needs a real token: the wrapper makes one in a
    # temporary directory, runs the replay against it, and removes it.
    add_test(NAME fuzz_${t} COMMAND bash ${FUZZ_DIR}/setup_token.sh
      $<TARGET_FILE:fuzz_${t}_replay> ${FUZZ_DIR}/corpus/${t})
  else()
    add_test(NAME fuzz_${t} COMMAND fuzz_${t}_replay ${FUZZ_DIR}/corpus/${t})
  endif()
  # Leaks inside SoftHSM2 are not keyd's (tests/integration/lsan.supp); the
  # suppression needs whole stacks, and libcrypto has no frame pointers.
  # Harmless outside sanitizer builds.
  set_tests_properties(fuzz_${t} PROPERTIES LABELS fuzz TIMEOUT 120
    ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/integration/lsan.supp:print_suppressions=0;ASAN_OPTIONS=fast_unwind_on_malloc=0")
endforeach()

# The seed generator (tests/fuzz/make_seeds.sh runs it).
add_executable(fuzz_make_seeds ${FUZZ_DIR}/make_seeds.c ${FUZZ_DIR}/fuzz_env.c)
target_link_libraries(fuzz_make_seeds PRIVATE keydcore)

option(KEYD_FUZZ "Build the libFuzzer targets (needs clang)" OFF)
if(KEYD_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "KEYD_FUZZ=ON builds libFuzzer targets, which only "
      "clang can build; this build directory uses ${CMAKE_C_COMPILER_ID} "
      "(${CMAKE_C_COMPILER}). Configure a separate one with clang:\n"
      "  CC=clang-19 cmake -S . -B build-fuzz -DKEYD_FUZZ=ON\n"
      "(see docs/fuzzing.md).")
  endif()
  include(CheckCSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
  set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=fuzzer")
  check_c_source_compiles("
    #include <stddef.h>
    #include <stdint.h>
    int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
    int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
    { (void)d; (void)n; return 0; }" KEYD_HAVE_LIBFUZZER)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
  if(NOT KEYD_HAVE_LIBFUZZER)
    message(FATAL_ERROR "${CMAKE_C_COMPILER} cannot link -fsanitize=fuzzer: "
      "libFuzzer is missing. For clang-19 on Debian 12 and 13 it is in "
      "libclang-rt-19-dev (scripts/deps.sh installs it).")
  endif()

  set(FUZZ_SAN -fsanitize=address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer)
  # What the targets drive is instrumented too, or the fuzzer would be
  # blind to its branches. Everything linking these libraries gets the
  # sanitizer runtimes.
  foreach(lib keydcore keydproto keydpassport)
    target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link ${FUZZ_SAN})
    target_link_options(${lib} INTERFACE ${FUZZ_SAN})
  endforeach()
  foreach(t IN LISTS FUZZ_TARGETS)
    add_executable(fuzz_${t} ${FUZZ_DIR}/fuzz_${t}.c ${FUZZ_EXTRA_${t}})
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer ${FUZZ_SAN})
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer ${FUZZ_SAN})
    target_link_libraries(fuzz_${t} PRIVATE keydcore keydpassport)
    list(APPEND FUZZ_BINARIES fuzz_${t})
  endforeach()
  add_custom_target(fuzzers DEPENDS ${FUZZ_BINARIES})
endif()
