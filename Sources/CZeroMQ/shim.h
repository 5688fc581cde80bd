#ifndef REEL_CZEROMQ_SHIM_H
#define REEL_CZEROMQ_SHIM_H
#include <zmq.h>

/// ZMQ_VERSION is a macro expression Swift cannot import.
static inline int CZeroMQ_header_version(void) { return ZMQ_VERSION; }
#endif
