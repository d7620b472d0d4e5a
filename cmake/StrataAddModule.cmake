# strata_add_module(NAME SOURCES src... [LIBS lib...] [OUTPUT_DIRECTORY dir])
#
# Builds a Strata module: a plugin (shared object NAME.so, no "lib" prefix) that the
# engine loads with dlopen. Shared by the source tree (cmake/StrataHelpers.cmake) and the
# installed CMake package (find_package(Strata CONFIG)); see docs/modules.md.
#
# - Links Strata::sdk (values, paths, schemas, the module SDK headers) statically, so the
#   plugin depends on nothing of Strata at run time; LIBS are linked PRIVATE after it.
# - Compiles as C++20 without extensions, like the server: the ABI stamp records the
#   language standard, and a module built with another one is refused at load.
# - Hidden visibility, and the symbols of the static libraries it links are made local
#   (--exclude-libs): the plugin exports only strata_module_entry_v1. --no-undefined
#   turns a missing symbol into a link error instead of a load failure on the server.
# - Written to OUTPUT_DIRECTORY, else ${STRATA_MODULE_OUTPUT_DIRECTORY} when set (the
#   source tree sets build/modules), else ${CMAKE_BINARY_DIR}/modules.
function(strata_add_module name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LIBS" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "strata_add_module(${name}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "strata_add_module(${name}): SOURCES is required")
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set(output_dir "${ARG_OUTPUT_DIRECTORY}")
  elseif(DEFINED STRATA_MODULE_OUTPUT_DIRECTORY)
    set(output_dir "${STRATA_MODULE_OUTPUT_DIRECTORY}")
  else()
    set(output_dir "${CMAKE_BINARY_DIR}/modules")
  endif()

  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE Strata::sdk ${ARG_LIBS})
  # g++ only: clang never emits STB_GNU_UNIQUE symbols, and has no such flag.
  target_compile_options(${name} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  target_link_options(${name} PRIVATE LINKER:--exclude-libs,ALL LINKER:--no-undefined)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    LIBRARY_OUTPUT_DIRECTORY "${output_dir}"
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    CXX_EXTENSIONS OFF
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
endfunction()
