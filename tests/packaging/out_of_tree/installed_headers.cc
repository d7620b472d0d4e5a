// Compiles every public header the package installs, each self-contained.
#include <strata/engine.h>
#include <strata/json.h>
#include <strata/key_codec.h>
#include <strata/module.h>
#include <strata/navigate.h>
#include <strata/path.h>
#include <strata/schema.h>
#include <strata/status.h>
#include <strata/value.h>
#include <strata/value_codec.h>
