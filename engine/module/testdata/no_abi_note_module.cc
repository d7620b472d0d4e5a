// A plain shared library: no STRATA_MODULE, so no .strata_abi section. The loader must
// refuse it from the file, without dlopen.
extern "C" __attribute__((visibility("default"))) int not_a_strata_module() { return 1; }
