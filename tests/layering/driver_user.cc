// A program of a driver user, for the layering check (tests/layering): never built.
#include "strata/client.h"

int main() { return 0; }
