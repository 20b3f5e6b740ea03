# The man pages (docs/man) against the programs' --help, against
# docs/configuration.md, and installed; and --help and --version of every
# program. Neither needs a daemon or a token: label unit.
set(KEYD_PROGRAMS $<TARGET_FILE:keyd-daemon> $<TARGET_FILE:keydctl>
  $<TARGET_FILE:keyd-backup> $<TARGET_FILE:keyd-audit>)

add_test(NAME man_pages
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/man/man_pages.sh ${KEYD_PROGRAMS})
add_test(NAME cli_help_version
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/man/cli_help_version.sh
    ${PROJECT_VERSION} ${KEYD_PROGRAMS})
set_tests_properties(man_pages cli_help_version PROPERTIES LABELS unit
  TIMEOUT 60
  ENVIRONMENT "KEYD_SOURCE_DIR=${PROJECT_SOURCE_DIR};KEYD_BUILD_DIR=${PROJECT_BINARY_DIR};CMAKE_COMMAND=${CMAKE_COMMAND}")
