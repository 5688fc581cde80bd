#include "csentencepiece.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <string>
#include <vector>

struct reel_spm {
    sentencepiece::SentencePieceProcessor processor;
};

static void copy_error(const std::string &message, char *error, size_t error_size) {
    if (error == nullptr || error_size == 0) return;
    size_t n = message.size() < error_size - 1 ? message.size() : error_size - 1;
    std::memcpy(error, message.data(), n);
    error[n] = 0;
}

extern "C" reel_spm *reel_spm_load(const void *bytes, size_t length, char *error, size_t error_size) {
    auto *model = new (std::nothrow) reel_spm();
    if (model == nullptr) {
        copy_error("out of memory", error, error_size);
        return nullptr;
    }
    try {
        auto status = model->processor.LoadFromSerializedProto(
            std::string(static_cast<const char *>(bytes), length));
        if (!status.ok()) {
            copy_error(status.ToString(), error, error_size);
            delete model;
            return nullptr;
        }
    } catch (const std::exception &e) {
        copy_error(e.what(), error, error_size);
        delete model;
        return nullptr;
    }
    return model;
}

extern "C" void reel_spm_free(reel_spm *model) { delete model; }

extern "C" long reel_spm_encode(const reel_spm *model, const char *text, int32_t *ids, size_t capacity) {
    try {
        std::vector<int> pieces;
        if (!model->processor.Encode(text, &pieces).ok()) return -1;
        for (size_t i = 0; i < pieces.size() && i < capacity; i++) ids[i] = pieces[i];
        return static_cast<long>(pieces.size());
    } catch (...) {
        return -1;
    }
}

extern "C" int32_t reel_spm_piece_count(const reel_spm *model) { return model->processor.GetPieceSize(); }
extern "C" int32_t reel_spm_unk_id(const reel_spm *model) { return model->processor.unk_id(); }
extern "C" int32_t reel_spm_eos_id(const reel_spm *model) { return model->processor.eos_id(); }
extern "C" int32_t reel_spm_pad_id(const reel_spm *model) { return model->processor.pad_id(); }

extern "C" int reel_spm_train(const char *arguments, char *error, size_t error_size) {
    try {
        auto status = sentencepiece::SentencePieceTrainer::Train(arguments);
        if (!status.ok()) {
            copy_error(status.ToString(), error, error_size);
            return -1;
        }
    } catch (const std::exception &e) {
        copy_error(e.what(), error, error_size);
        return -1;
    }
    return 0;
}
