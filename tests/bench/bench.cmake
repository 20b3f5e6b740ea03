# Benchmarks (STYLE.md: programs, never timed assertions; nothing here is
# registered with ctest). tests/bench/run-bench.sh sets up a token, keyd
# and p11-kit server and runs keyd-bench; docs/benchmarks.md holds a run.
# Included from tests/CMakeLists.txt, so paths are relative to tests/.
add_executable(keyd-bench bench/keyd-bench.c)
target_include_directories(keyd-bench PRIVATE ${P11KIT_INCLUDE_DIRS})
target_link_libraries(keyd-bench PRIVATE keydclient PkgConfig::LIBCRYPTO
  Threads::Threads ${CMAKE_DL_LIBS})

# keyd.so against libkeyd, and TLS handshakes through the OpenSSL paths:
# tests/bench/run-provider-bench.sh runs it.
add_executable(provider-bench bench/provider-bench.c)
target_link_libraries(provider-bench PRIVATE keydclient PkgConfig::LIBCRYPTO
  Threads::Threads)
add_dependencies(provider-bench keyd-provider)

# The floor of a process boundary on this machine, without keyd: one
# request/reply round trip between two processes (or threads, or over
# shared memory and futexes). docs/benchmarks.md, "Token processes".
add_executable(handoff bench/handoff.c)
target_link_libraries(handoff PRIVATE Threads::Threads)

# The same question with real token signatures: a daemon that signs in its
# own threads, against a socket-facing process and a token process in the
# synchronous and the pipelined arrangements. docs/benchmarks.md, "Token
# processes"; tests/bench/run-pipeline.sh runs it.
add_executable(pipeline bench/pipeline.c)
target_include_directories(pipeline PRIVATE ${P11KIT_INCLUDE_DIRS})
target_link_libraries(pipeline PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
