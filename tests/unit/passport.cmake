# proto/passport.c: TN canonicalisation and the TNAuthList reader.
keyd_unit_test(test_passport unit/test_passport.c LIBS keydpassport)
