# The layering check, run by ctest (tests/layering/CMakeLists.txt says what it checks).
#   cmake -DCASES=layering_cases.cmake -DSOURCE_DIR=<source root> -DWORK_DIR=<scratch dir>
#         -DCXX=<C++ compiler> -DIMPLICIT_INCLUDES=<the compiler's own include dirs>
#         -P check_layering.cmake
# A header is "reachable" when `__has_include("<header>")` holds for a consumer compiled
# with its declared include directories: what `#include "<header>"` would find.
cmake_minimum_required(VERSION 3.25)
include(${CASES})

# Engine-internal headers: every header under engine/ that is not in an include/ directory,
# spelled as engine code includes it (storage/storage.h), from the source root
# (engine/storage/storage.h) and bare (storage.h: its own directory on the path).
file(GLOB_RECURSE engine_headers RELATIVE ${SOURCE_DIR}/engine ${SOURCE_DIR}/engine/*.h)
set(internal)
set(public)
foreach(header IN LISTS engine_headers)
  if(header MATCHES "(^|/)include/(.*)$")
    list(APPEND public ${CMAKE_MATCH_2})
  else()
    get_filename_component(bare ${header} NAME)
    list(APPEND internal ${header} engine/${header} ${bare})
  endif()
endforeach()
list(REMOVE_DUPLICATES internal)
if(NOT "storage/storage.h" IN_LIST internal OR NOT "strata/engine.h" IN_LIST public)
  message(FATAL_ERROR "layering check: no engine headers found under ${SOURCE_DIR}/engine")
endif()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(failures 0)
foreach(consumer IN LISTS consumers)
  set(flags -std=c++20)
  set(dirs)
  foreach(dir IN LISTS ${consumer}_includes)
    if(dir AND NOT dir IN_LIST IMPLICIT_INCLUDES)  # as CMake itself leaves them out
      list(APPEND dirs ${dir})
      list(APPEND flags -I${dir})
    endif()
  endforeach()
  foreach(define IN LISTS ${consumer}_defines)
    list(APPEND flags -D${define})
  endforeach()
  set(probe_headers ${internal})
  if(${consumer}_client)
    list(APPEND probe_headers ${public})
  endif()

  # Positive control: the consumer's own public header compiles with these flags.
  set(control ${WORK_DIR}/${consumer}_control.cc)
  file(WRITE ${control} "#include \"${${consumer}_public}\"\n")
  execute_process(COMMAND ${CXX} ${flags} -fsyntax-only ${control}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(SEND_ERROR "${consumer} (${${consumer}_target}): its public header "
                       "${${consumer}_public} does not compile with its declared flags "
                       "${flags}:\n${out}")
    math(EXPR failures "${failures} + 1")
  endif()

  # Every forbidden header must be out of reach.
  set(probe ${WORK_DIR}/${consumer}_probe.cc)
  set(text "")
  foreach(header IN LISTS probe_headers)
    string(APPEND text "#if __has_include(\"${header}\")\nREACHABLE ${header}\n#endif\n")
  endforeach()
  file(WRITE ${probe} "${text}")
  execute_process(COMMAND ${CXX} ${flags} -E -P ${probe}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(SEND_ERROR "${consumer}: preprocessing the probe failed:\n${err}")
    math(EXPR failures "${failures} + 1")
  endif()
  string(REGEX MATCHALL "REACHABLE [^\n]+" reached "${out}")
  foreach(line IN LISTS reached)
    string(REPLACE "REACHABLE " "" header "${line}")
    set(where "")
    foreach(dir IN LISTS dirs)
      if(EXISTS ${dir}/${header})
        list(APPEND where ${dir})
      endif()
    endforeach()
    message(SEND_ERROR "${consumer} (${${consumer}_target}) reaches the engine header "
                       "\"${header}\" through ${where}")
    math(EXPR failures "${failures} + 1")
  endforeach()

  foreach(lib IN LISTS ${consumer}_bad_links)
    message(SEND_ERROR "${consumer} (${${consumer}_target}) links the engine library ${lib}")
    math(EXPR failures "${failures} + 1")
  endforeach()

  list(LENGTH probe_headers probed)
  message(STATUS "${consumer} (${${consumer}_target}): ${${consumer}_public} compiles; "
                 "${probed} engine headers probed")
endforeach()

if(failures GREATER 0)
  message(FATAL_ERROR "layering check: ${failures} violation(s), see above")
endif()
message(STATUS "layering check: no engine-internal header reachable from a client, the "
               "server or a module")
