# Unit tests of the Shamir/SLIP-0039 and backup code (keyd/backup.cmake).
# Included from tests/CMakeLists.txt: paths are relative to tests/.
keyd_unit_test(test_gf256 unit/test_gf256.c LIBS keydcore)
keyd_unit_test(test_shamir unit/test_shamir.c LIBS keydcore)
keyd_unit_test(test_slip39 unit/test_slip39.c LIBS keydcore)
# Drives the real keyd-backup program; build it first (target keyd-backup).
keyd_script_test(test_shamir_cli unit/test_shamir_cli.sh unit)
