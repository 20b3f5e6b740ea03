# Unit tests of the Shamir/SLIP-0039 and backup code (keyd/backup.cmake).
# Included from tests/CMakeLists.txt: paths are relative to tests/.
keyd_unit_test(test_gf256 unit/test_gf256.c LIBS keydcore)
keyd_unit_test(test_shamir unit/test_shamir.c LIBS keydcore)
keyd_unit_test(test_slip39 unit/test_slip39.c LIBS keydcore)
# Drives the real keyd-backup program; build it first (target keyd-backup).
keyd_script_test(test_shamir_cli unit/test_shamir_cli.sh unit)
# The backup bundle, share sheets and RFC 5649 known answers, no token.
keyd_unit_test(test_bundle unit/test_bundle.c LIBS keydcore)
# An outside judge for the token tests: talks PKCS#11 directly, none of
# keyd's code.
add_executable(backup_probe ${CMAKE_CURRENT_SOURCE_DIR}/integration/backup_probe.c)
target_link_libraries(backup_probe PRIVATE PkgConfig::P11KIT)
# keyd-backup against real SoftHSM2 tokens (build keyd-backup and
# backup_probe first).
keyd_script_test(backup_drill integration/backup_drill.sh integration)
keyd_script_test(backup_badinput integration/backup_badinput.sh integration)
keyd_script_test(backup_keygen integration/backup_keygen.sh integration)
# create --pdf: the PDF share sheets judged by poppler-utils, zbar-tools
# and qpdf (build keyd-backup first).
keyd_script_test(backup_pdf integration/backup_pdf.sh integration)
# keyd-backup drill (session objects only, on the keys' token and a blank
# one) and rekey (a new BMK and share set for the keys on the token).
keyd_script_test(backup_drill_cmd integration/backup_drill_cmd.sh integration)
keyd_script_test(backup_rekey integration/backup_rekey.sh integration)
# keyd-backup reshare (issue 18): a new share set from a quorum of the old.
keyd_script_test(backup_reshare integration/backup_reshare.sh integration)
# Shares typed at a terminal, through a pseudo-terminal that pty_drive
# types into (libc only, no expect or Python).
add_executable(pty_drive ${CMAKE_CURRENT_SOURCE_DIR}/integration/pty_drive.c)
keyd_script_test(backup_typing integration/backup_typing.sh integration)
# A new share set for the same master secret, and the typed-share
# reader's count of shares still needed, without a token or a terminal.
keyd_unit_test(test_backup_reshare unit/test_backup_reshare.c LIBS keydcore)
keyd_unit_test(test_backup_typing unit/test_backup_typing.c LIBS keydcore)
# Staged writes of bundles and drill reports through their directory's
# descriptor, and what their messages call them.
keyd_unit_test(test_backup_file unit/test_backup_file.c LIBS keydcore)
