#!/usr/bin/env python3
"""Independent NumPy reference of Reel's denoiser and text encoder forward pass.

Usage: dit_reference.py MODEL_DIR INPUTS.safetensors OUTPUT.safetensors

Reads the model package (config.json + model.safetensors), the inputs written by the Swift test
(x [B,F,C,H,W], t [B], tokens_0 .. tokens_{B-1}), computes in float64 and writes
text_0 .. text_{B-1} (encoder outputs) and velocity [B,F,C,H,W].
Written from the architecture description, not from the Swift code, with plain NumPy.
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", name
        a, b = entry["data_offsets"]
        data = np.frombuffer(blob[8 + n + a:8 + n + b], dtype="<f4")
        out[name] = data.reshape(entry["shape"]).astype(np.float64)
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def layer_norm(x, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sincos(positions, width):
    half = width // 2
    omega = 10000.0 ** (-np.arange(half) / half)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


class Weights:
    def __init__(self, tensors):
        self.t = tensors

    def linear(self, name, x):
        return x @ self.t[name + ".weight"].T + self.t[name + ".bias"]

    def norm(self, name, x):
        return layer_norm(x) * self.t[name + ".weight"] + self.t[name + ".bias"]


def attention(q, k, v, heads):
    """q [..., Lq, D], k and v [..., Lk, D] -> [..., Lq, D]."""
    d = q.shape[-1]
    hd = d // heads
    outs = []
    for h in range(heads):
        sl = slice(h * hd, (h + 1) * hd)
        s = q[..., sl] @ np.swapaxes(k[..., sl], -1, -2) / np.sqrt(hd)
        outs.append(softmax(s) @ v[..., sl])
    return np.concatenate(outs, axis=-1)


def self_attention(w, name, x, heads):
    d = x.shape[-1]
    qkv = w.linear(name + ".qkv", x)
    out = attention(qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:], heads)
    return w.linear(name + ".out", out)


def encode_text(w, cfg, tokens):
    d = cfg["width"]
    h = w.t["text.token_embed.weight"][tokens] + sincos(np.arange(len(tokens)), d)
    for i in range(cfg["depth"]):
        p = "text.blocks.%d" % i
        h = h + self_attention(w, p + ".attn", w.norm(p + ".norm1", h), cfg["heads"])
        h = h + w.linear(p + ".mlp.fc2", gelu(w.linear(p + ".mlp.fc1", w.norm(p + ".norm2", h))))
    return w.norm("text.norm", h)


def velocity(w, cfg, x, t, texts):
    B, F, C, H, W = x.shape
    p, d, heads = cfg["patch"], cfg["width"], cfg["heads"]
    gh, gw = H // p, W // p
    # patchify: tokens ordered (frame, row, col), features (channel, dy, dx)
    tok = x.reshape(B, F, C, gh, p, gw, p).transpose(0, 1, 3, 5, 2, 4, 6).reshape(B, F, gh * gw, C * p * p)
    h = w.linear("patch_embed", tok)
    pos_t = sincos(np.arange(F), d // 2)
    pos_y = sincos(np.arange(gh), d // 4)
    pos_x = sincos(np.arange(gw), d // 4)
    pos = np.concatenate([
        np.broadcast_to(pos_t[:, None, None, :], (F, gh, gw, d // 2)),
        np.broadcast_to(pos_y[None, :, None, :], (F, gh, gw, d // 4)),
        np.broadcast_to(pos_x[None, None, :, :], (F, gh, gw, d // 4)),
    ], axis=-1).reshape(F, gh * gw, d)
    h = h + pos[None]

    tfeat = np.stack([sincos([ti * 1000.0], 256)[0] for ti in t])
    c = silu(w.linear("time_embed.fc2", silu(w.linear("time_embed.fc1", tfeat))))  # [B, d]

    def mod(m, k):  # shift, scale, gate of branch k, broadcast over frames and tokens
        return [m[:, None, None, (3 * k + j) * d:(3 * k + j + 1) * d] for j in range(3)]

    for i in range(cfg["depth"]):
        pre = "blocks.%d" % i
        m = w.linear(pre + ".adaln", c)
        shift, scale, gate = mod(m, 0)
        a = layer_norm(h) * (1 + scale) + shift
        h = h + gate * self_attention(w, pre + ".attn_s", a, heads)       # within each frame
        shift, scale, gate = mod(m, 1)
        a = layer_norm(h) * (1 + scale) + shift
        a = np.swapaxes(a, 1, 2)                                          # [B, N, F, d]
        h = h + gate * np.swapaxes(self_attention(w, pre + ".attn_t", a, heads), 1, 2)
        a = w.norm(pre + ".norm_c", h)
        outs = []
        for b in range(B):
            q = w.linear(pre + ".cross.q", a[b].reshape(F * gh * gw, d))
            kv = w.linear(pre + ".cross.kv", texts[b])
            outs.append(attention(q, kv[:, :d], kv[:, d:], heads).reshape(F, gh * gw, d))
        h = h + w.linear(pre + ".cross.out", np.stack(outs))
        shift, scale, gate = mod(m, 2)
        a = layer_norm(h) * (1 + scale) + shift
        h = h + gate * w.linear(pre + ".mlp.fc2", gelu(w.linear(pre + ".mlp.fc1", a)))

    fm = w.linear("final.adaln", c)
    shift, scale = fm[:, None, None, :d], fm[:, None, None, d:]
    out = w.linear("final.linear", layer_norm(h) * (1 + scale) + shift)
    return out.reshape(B, F, gh, gw, C, p, p).transpose(0, 1, 4, 2, 5, 3, 6).reshape(B, F, C, H, W)


def main():
    model_dir, inputs_path, output_path = sys.argv[1:4]
    with open(model_dir + "/config.json") as f:
        cfg = json.load(f)
    w = Weights(read_safetensors(model_dir + "/model.safetensors"))
    inputs = read_safetensors(inputs_path)
    x, t = inputs["x"], inputs["t"]
    texts = [encode_text(w, cfg["text"], inputs["tokens_%d" % b].astype(np.int64)) for b in range(x.shape[0])]
    outputs = {"velocity": velocity(w, cfg, x, t, texts)}
    for b, text in enumerate(texts):
        outputs["text_%d" % b] = text
    write_safetensors(output_path, outputs)


if __name__ == "__main__":
    main()
