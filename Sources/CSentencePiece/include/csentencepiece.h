// A C face for Debian's libsentencepiece (a C++ library), so Swift can tokenise with it.
#ifndef CSENTENCEPIECE_H
#define CSENTENCEPIECE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_spm reel_spm;

/// Loads a SentencePiece model from `bytes`; NULL on failure, with the reason in `error`
/// (a NUL-terminated string of at most `error_size` bytes).
reel_spm *reel_spm_load(const void *bytes, size_t length, char *error, size_t error_size);
void reel_spm_free(reel_spm *model);

/// Encodes NUL-terminated UTF-8 `text` into at most `capacity` ids; returns how many ids the
/// text has (more than `capacity` means the output was cut), or -1 on failure.
long reel_spm_encode(const reel_spm *model, const char *text, int32_t *ids, size_t capacity);

int32_t reel_spm_piece_count(const reel_spm *model);
int32_t reel_spm_unk_id(const reel_spm *model);
int32_t reel_spm_eos_id(const reel_spm *model);
int32_t reel_spm_pad_id(const reel_spm *model);

/// Trains a SentencePiece model with the trainer's command-line style `arguments`
/// ("--input=... --model_prefix=... --vocab_size=..."); 0 on success, else -1 with the reason
/// in `error`.
int reel_spm_train(const char *arguments, char *error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
