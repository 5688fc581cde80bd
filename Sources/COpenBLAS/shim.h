#ifndef REEL_COPENBLAS_SHIM_H
#define REEL_COPENBLAS_SHIM_H
#include <cblas.h>

// OpenBLAS threading controls are declared in cblas.h on Debian; these prototypes keep the
// module usable with other cblas.h layouts that omit them.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
#endif
