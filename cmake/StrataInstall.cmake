# Installation, as the CMake package Strata (find_package(Strata CONFIG)):
#   - the public headers (strata/*.h: value, status, key_codec, value_codec, json, path,
#     histogram from common/; navigate, schema, module, engine from engine/) — no engine internals,
#     no wiredtiger.h;
#   - the static libraries, exported as targets
#       Strata::common  values, Status, the Path builder: what clients and modules share
#       Strata::sdk     the common vocabulary, schemas, strata/navigate.h and
#                       strata/module.h: what a module links
#       Strata::engine  the embedded engine (strata/engine.h) and the storage under it
#   - strata_add_module (cmake/StrataAddModule.cmake);
#   - from a STRATA_SANITIZE build, the sanitizer options its users need (below);
#   - the C++ driver (strata/client.h, strata/protocol/*.h) as Strata::client, installed by
#     strata_install_client() below, which drivers/cpp/CMakeLists.txt calls (the protocol
#     and driver libraries are created after the engine).
# Included by engine/CMakeLists.txt once every engine library exists. `make install
# PREFIX=...` runs it; tests/packaging checks it. See docs/modules.md.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(STRATA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Strata)

# Every library with public headers exports $<BUILD_INTERFACE:its include/> and
# $<INSTALL_INTERFACE:include>; engine-internal include directories are never part of a
# library's interface (engine/CMakeLists.txt), so nothing of the source tree is exported.

# A library of a STRATA_SANITIZE build calls into the AddressSanitizer and
# UndefinedBehaviorSanitizer runtimes, so whatever links it installed must link with
# -fsanitize too; it is also compiled with the same options, so that the user's code (and
# the SDK's inline code in it) is checked like the SDK's. The build tree has these options
# on every target already: they go to the installed package only. Nothing otherwise.
function(strata_installed_sanitizer_options target)
  if(NOT STRATA_SANITIZE)
    return()
  endif()
  set(compile ${STRATA_SANITIZE_COMPILE_OPTIONS})
  set(link ${STRATA_SANITIZE_LINK_OPTIONS})
  foreach(options IN ITEMS compile link)
    list(TRANSFORM ${options} PREPEND "$<INSTALL_INTERFACE:")
    list(TRANSFORM ${options} APPEND ">")
  endforeach()
  target_compile_options(${target} INTERFACE ${compile})
  target_link_options(${target} INTERFACE ${link})
endfunction()

# Target -> exported name (Strata::<name>), in dependency order.
set(strata_exported_libraries
  strata_common common
  strata_navigate navigate
  strata_schema schema
  strata_sdk sdk
  strata_storage storage
  strata_depot depot
  strata_pstate pstate
  strata_module module
  strata_replication replication
  strata_runtime engine)
set(strata_installed_targets)
while(strata_exported_libraries)
  list(POP_FRONT strata_exported_libraries target export_name)
  strata_installed_sanitizer_options(${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name})
  list(APPEND strata_installed_targets ${target})
endwhile()

install(TARGETS ${strata_installed_targets}
  EXPORT StrataTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT StrataTargets NAMESPACE Strata:: DESTINATION ${STRATA_INSTALL_CMAKEDIR})

install(FILES
    ${PROJECT_SOURCE_DIR}/common/include/strata/value.h
    ${PROJECT_SOURCE_DIR}/common/include/strata/status.h
    ${PROJECT_SOURCE_DIR}/common/include/strata/key_codec.h
    ${PROJECT_SOURCE_DIR}/common/include/strata/value_codec.h
    ${PROJECT_SOURCE_DIR}/common/include/strata/json.h
    ${PROJECT_SOURCE_DIR}/common/include/strata/path.h
    ${PROJECT_SOURCE_DIR}/common/include/strata/histogram.h
    ${PROJECT_SOURCE_DIR}/common/include/strata/diff.h
    ${PROJECT_SOURCE_DIR}/engine/path/include/strata/navigate.h
    ${PROJECT_SOURCE_DIR}/engine/pstate/include/strata/schema.h
    ${PROJECT_SOURCE_DIR}/engine/module/include/strata/module.h
    ${PROJECT_SOURCE_DIR}/engine/runtime/include/strata/engine.h
    ${PROJECT_SOURCE_DIR}/engine/runtime/include/strata/logger.h
    ${PROJECT_SOURCE_DIR}/engine/runtime/include/strata/replication.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/strata)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/StrataConfig.cmake.in
  ${PROJECT_BINARY_DIR}/StrataConfig.cmake
  INSTALL_DESTINATION ${STRATA_INSTALL_CMAKEDIR})
# The ABI stamp, not this version, decides whether a module loads; the version only keeps
# find_package(Strata 0.1) honest.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/StrataConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES
    ${PROJECT_BINARY_DIR}/StrataConfig.cmake
    ${PROJECT_BINARY_DIR}/StrataConfigVersion.cmake
    ${PROJECT_SOURCE_DIR}/cmake/StrataAddModule.cmake
  DESTINATION ${STRATA_INSTALL_CMAKEDIR})

# The C++ driver: strata_client and the protocol library it links, exported into the same
# StrataTargets set as Strata::client and Strata::protocol (no engine library: a driver
# user links the common vocabulary, the protocol and FlatBuffers only).
function(strata_install_client)
  foreach(target IN ITEMS strata_protocol strata_client)
    strata_installed_sanitizer_options(${target})
  endforeach()
  set_target_properties(strata_protocol PROPERTIES EXPORT_NAME protocol)
  set_target_properties(strata_client PROPERTIES EXPORT_NAME client)
  install(TARGETS strata_protocol strata_client
    EXPORT StrataTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(FILES ${PROJECT_SOURCE_DIR}/drivers/cpp/include/strata/client.h
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/strata)
  install(FILES
      ${PROJECT_SOURCE_DIR}/protocol/include/strata/protocol/frame.h
      ${PROJECT_SOURCE_DIR}/protocol/include/strata/protocol/messages.h
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/strata/protocol)
endfunction()
