# Helpers shared by every CMakeLists.txt of the project.

# strata_add_test(NAME SOURCES src... [LIBS lib...] [PROPERTIES prop value...])
# A GoogleTest executable in build/bin/, registered with ctest test by test.
function(strata_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest_main GTest::gmock strata_test_seed)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${ARG_PROPERTIES})
endfunction()

# strata_add_bench(NAME SOURCES src... [LIBS lib...])
# A Google Benchmark executable in build/bin/; `make bench` runs every one of them.
function(strata_add_bench name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} benchmark::benchmark)
  set_property(GLOBAL APPEND PROPERTY STRATA_BENCHMARKS ${name})
endfunction()

# strata_add_module(NAME SOURCES src... [LIBS lib...] [OUTPUT_DIRECTORY dir]): a module
# plugin, build/modules/NAME.so by default. The same file is installed with the CMake
# package, so modules build the same way in and out of the source tree.
include(${CMAKE_CURRENT_LIST_DIR}/StrataAddModule.cmake)
