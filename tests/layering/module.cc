// A module, for the layering check (tests/layering): never built.
#include "strata/module.h"
