# keyd-p11shim.so: a fault-injecting PKCS#11 module for tests. It wraps a
# real module (env P11SHIM_MODULE, default SoftHSM2) and fails calls as
# the file named by env P11SHIM_CONTROL says (see p11shim.c). Included
# from tests/CMakeLists.txt, so paths are relative to tests/.
add_library(keyd-p11shim MODULE shim/p11shim.c)
set_target_properties(keyd-p11shim PROPERTIES PREFIX ""
  LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests/shim)
# Only the PKCS#11 header of p11-kit; the shim links no p11-kit code.
target_include_directories(keyd-p11shim PRIVATE ${P11KIT_INCLUDE_DIRS})
target_link_libraries(keyd-p11shim PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)
