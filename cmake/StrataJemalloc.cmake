# strata_link_jemalloc(TARGET): TARGET (an executable) allocates through jemalloc when it is
# installed (Debian libjemalloc-dev, listed in scripts/install-deps.sh); without it the
# target links glibc malloc and works unchanged. Measured on stratad: 1.2x on W1 pipelined
# and batched appends (docs/performance.md). --no-as-needed keeps the library although the
# target calls none of its symbols by name: it replaces malloc/free for the whole process,
# WiredTiger included.
include_guard(GLOBAL)
find_package(PkgConfig REQUIRED)
pkg_check_modules(JEMALLOC IMPORTED_TARGET GLOBAL jemalloc)
if(NOT JEMALLOC_FOUND)
  message(WARNING "jemalloc not found by pkg-config (package libjemalloc-dev): stratad and "
                  "strata-bench are linked with glibc malloc, which is slower on pipelined "
                  "appends; run scripts/install-deps.sh and re-run cmake to use jemalloc")
endif()

function(strata_link_jemalloc target)
  if(JEMALLOC_FOUND)
    target_link_libraries(${target} PRIVATE
      "-Wl,--push-state,--no-as-needed" PkgConfig::JEMALLOC "-Wl,--pop-state")
  endif()
endfunction()
