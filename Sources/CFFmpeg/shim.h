#ifndef REEL_CFFMPEG_SHIM_H
#define REEL_CFFMPEG_SHIM_H
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

// FFmpeg macros that Swift cannot import, exposed as functions with a CFFmpeg_ prefix.
static inline int CFFmpeg_averror_eof(void) { return AVERROR_EOF; }
static inline int CFFmpeg_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int CFFmpeg_averror(int posix_error) { return AVERROR(posix_error); }
static inline int64_t CFFmpeg_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline int CFFmpeg_av_time_base(void) { return AV_TIME_BASE; }
static inline int CFFmpeg_avfmt_nofile(void) { return AVFMT_NOFILE; }
static inline int CFFmpeg_avfmt_flag_custom_io(void) { return AVFMT_FLAG_CUSTOM_IO; }
static inline int CFFmpeg_avseek_size(void) { return AVSEEK_SIZE; }
static inline int CFFmpeg_avfmt_globalheader(void) { return AVFMT_GLOBALHEADER; }
static inline int CFFmpeg_codec_flag_global_header(void) { return AV_CODEC_FLAG_GLOBAL_HEADER; }
static inline int CFFmpeg_avio_flag_write(void) { return AVIO_FLAG_WRITE; }
static inline int CFFmpeg_error_max_string_size(void) { return AV_ERROR_MAX_STRING_SIZE; }

/// av_err2str is a macro around a compound literal; this writes into a caller's buffer.
static inline const char *CFFmpeg_error_string(int code, char *buffer, size_t size) {
    av_strerror(code, buffer, size);
    return buffer;
}
#endif
