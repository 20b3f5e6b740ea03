# Hostile clients (issue 7): slowloris, clients that never read, 1000
# connections against a low file limit, 1-byte writes, SCM_RIGHTS; each
# while a well-behaved client is being served. Included from
# tests/CMakeLists.txt, so paths are relative to tests/. Uses kd_raw
# (integration.cmake).
keyd_script_test(hostile integration/hostile.sh integration)
# 77: skipped in sanitizer builds.
set_tests_properties(hostile PROPERTIES SKIP_RETURN_CODE 77)
