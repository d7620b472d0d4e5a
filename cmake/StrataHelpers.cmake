# Helpers shared by every CMakeLists.txt of the project.

# strata_add_test(NAME SOURCES src... [LIBS lib...] [PROPERTIES prop value...])
# A GoogleTest executable in build/bin/, registered with ctest test by test.
function(strata_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest_main GTest::gmock)
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

# strata_add_module(NAME SOURCES src... [LIBS lib...])
# A module plugin: a shared object loaded with dlopen, written to build/modules/NAME.so.
function(strata_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${STRATA_MODULE_OUTPUT_DIRECTORY}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
endfunction()
