#ifndef REEL_CZEROMQ_SHIM_H
#define REEL_CZEROMQ_SHIM_H
#include <zmq.h>

/// ZMQ_VERSION is a macro expression Swift cannot import.
static inline int CZeroMQ_header_version(void) { return ZMQ_VERSION; }

/// ETERM is defined by zmq.h relative to ZMQ_HAUSNUMERO, an expression Swift cannot import.
static inline int CZeroMQ_eterm(void) { return ETERM; }
#endif
