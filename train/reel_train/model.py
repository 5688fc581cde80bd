"""The Reel denoiser and text encoder in PyTorch, tensor for tensor the architecture of
Sources/Diffusion (Denoiser.swift, TextEncoder.swift): the state dict's names are the names the
Swift code reads from model.safetensors, and the forward pass is the same math, so exported
weights render the same videos there (the parity fixture checks it within 1e-4)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6
TIMESTEP_FEATURES = 256
MINIMUM_PREDICTION_TIME = 0.05  # ModelConfig.minimumPredictionTime


def shifted(t, shift):
    """Timestep shift, as the Swift FlowSchedule warps its steps: t' = s t / (1 + (s - 1) t)."""
    return shift * t / (1 + (shift - 1) * t)


def sincos(positions, width):
    """Rows of [sin(p*w_0) .. sin(p*w_{h-1}), cos(p*w_0) .. cos(p*w_{h-1})], w_i = 10000^(-i/h)."""
    half = width // 2
    omega = 10000.0 ** (-torch.arange(half, dtype=torch.float64, device=positions.device) / half)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).to(torch.float32)


def phase_features(frames, period, harmonics):
    """[sin(2πk·f/P) for k = 1…K, then cos(2πk·f/P) for k = 1…K] of each frame index f [B]."""
    k = torch.arange(1, harmonics + 1, dtype=torch.float64)
    angles = 2 * math.pi * (frames.to(torch.float64) % period)[:, None] * k[None, :] / period
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def progress_features(first_frame, video_frames, window, stride=None):
    """[u0, 1 - u1] of each window [B], where u0 and u1 are how far through its video (0 at the
    first frame, 1 at the last) the window's first and last frames lie; `stride` [B] (None: 1) is
    how many video frames apart the window's frames lie. A video one window long gives [0, 0],
    so a model gains the feature without changing what it renders alone."""
    length = torch.clamp(video_frames.to(torch.float64), min=window) - 1
    first = first_frame.to(torch.float64)
    span = (window - 1) * (1 if stride is None else stride.to(torch.float64))
    return torch.stack([first / length, 1 - (first + span) / length], dim=1)


def stride_features(stride):
    """1 - 1/s of each window's stride s [B, 1]: 0 for consecutive frames, so a model gains the
    feature without changing what it renders of them, and towards 1 for keyframes far apart."""
    return (1 - 1 / stride.to(torch.float64))[:, None]


def video_positions(frames, grid_h, grid_w, width):
    """Half the width for the frame index, a quarter each for patch row and column."""
    t = sincos(torch.arange(frames), width // 2)
    y = sincos(torch.arange(grid_h), width // 4)
    x = sincos(torch.arange(grid_w), width // 4)
    return torch.cat([
        t[:, None, None, :].expand(frames, grid_h, grid_w, width // 2),
        y[None, :, None, :].expand(frames, grid_h, grid_w, width // 4),
        x[None, None, :, :].expand(frames, grid_h, grid_w, width // 4),
    ], dim=-1).reshape(frames, grid_h * grid_w, width)


def layer_norm(x):
    return F.layer_norm(x, (x.shape[-1],), eps=EPS)


def attend(q, k, v, heads, key_mask=None):
    """q [..., Lq, D], k and v [..., Lk, D]; key_mask [..., Lk] True where a key is real."""
    *lead, lq, d = q.shape
    lk = k.shape[-2]
    hd = d // heads
    q = q.reshape(*lead, lq, heads, hd).transpose(-2, -3)
    k = k.reshape(*lead, lk, heads, hd).transpose(-2, -3)
    v = v.reshape(*lead, lk, heads, hd).transpose(-2, -3)
    mask = None if key_mask is None else key_mask[..., None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(-2, -3).reshape(*lead, lq, d)


class SelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.heads = heads

    def forward(self, x, key_mask=None):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.out(attend(q, k, v, self.heads, key_mask))


class FeedForward(nn.Module):
    def __init__(self, width, ratio):
        super().__init__()
        self.fc1 = nn.Linear(width, width * ratio)
        self.fc2 = nn.Linear(width * ratio, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Norm(nn.LayerNorm):
    def __init__(self, width):
        super().__init__(width, eps=EPS)


class TextBlock(nn.Module):
    def __init__(self, width, heads, ratio):
        super().__init__()
        self.norm1, self.attn = Norm(width), SelfAttention(width, heads)
        self.norm2, self.mlp = Norm(width), FeedForward(width, ratio)

    def forward(self, h, mask):
        h = h + self.attn(self.norm1(h), mask)
        return h + self.mlp(self.norm2(h))


class TextEncoder(nn.Module):
    def __init__(self, vocabulary, cfg):
        super().__init__()
        self.token_embed = nn.Embedding(vocabulary, cfg["width"])
        self.blocks = nn.ModuleList(TextBlock(cfg["width"], cfg["heads"], cfg.get("mlp_ratio", 4)) for _ in range(cfg["depth"]))
        self.norm = Norm(cfg["width"])

    def forward(self, tokens, mask):
        """tokens [B, L] padded, mask [B, L] True for real tokens. Padded keys are masked, so
        each prompt's real rows equal what the Swift encoder computes on it alone."""
        width = self.token_embed.embedding_dim
        h = self.token_embed(tokens) + sincos(torch.arange(tokens.shape[1]), width).to(self.token_embed.weight)
        for block in self.blocks:
            h = block(h, mask)
        return self.norm(h)


class CrossAttention(nn.Module):
    def __init__(self, width, text_width, heads):
        super().__init__()
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(text_width, 2 * width)
        self.out = nn.Linear(width, width)
        self.heads = heads

    def forward(self, x, context, mask):
        """x [B, T, D]; context [B, L, Dt] with mask [B, L]."""
        k, v = self.kv(context).chunk(2, dim=-1)
        return self.out(attend(self.q(x), k, v, self.heads, mask))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, heads = cfg["width"], cfg["heads"]
        self.adaln = nn.Linear(d, 9 * d)
        self.attn_s = SelfAttention(d, heads)
        self.attn_t = SelfAttention(d, heads)
        self.norm_c = Norm(d)
        self.cross = CrossAttention(d, cfg["text"]["width"], heads)
        self.mlp = FeedForward(d, cfg["mlp_ratio"])

    def start_as_identity(self):
        """Zero what the block adds to the stream: adaLN-Zero closes its gated paths, and its
        cross-attention, which adds ungated, gets a zero output projection. A block grown onto a
        trained model then leaves what that model computes unchanged."""
        for layer in (self.adaln, self.cross.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h, c, context, mask):
        """h [B, F, N, D]; c [B, D] (already SiLU'd)."""
        B, Fr, N, D = h.shape
        m = self.adaln(c)[:, None, None, :].chunk(9, dim=-1)
        a = layer_norm(h) * (1 + m[1]) + m[0]
        h = h + m[2] * self.attn_s(a)
        a = (layer_norm(h) * (1 + m[4]) + m[3]).transpose(1, 2)
        h = h + m[5] * self.attn_t(a).transpose(1, 2)
        a = self.norm_c(h).reshape(B, Fr * N, D)
        h = h + self.cross(a, context, mask).reshape(B, Fr, N, D)
        a = layer_norm(h) * (1 + m[7]) + m[6]
        return h + m[8] * self.mlp(a)


class TimeEmbed(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(TIMESTEP_FEATURES, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, t, text=None):
        """SiLU of the timestep's MLP, plus `text` (the pooled prompt's and the window phase's
        projections) when given."""
        features = sincos(t * 1000.0, TIMESTEP_FEATURES).to(self.fc1.weight)
        c = self.fc2(F.silu(self.fc1(features)))
        return F.silu(c if text is None else c + text)


class Final(nn.Module):
    def __init__(self, width, patch_values):
        super().__init__()
        self.adaln = nn.Linear(width, 2 * width)
        self.linear = nn.Linear(width, patch_values)


class Reel(nn.Module):
    """Text encoder and denoiser; `velocity` predicts noise - clean at time t."""

    def __init__(self, cfg, vocabulary):
        super().__init__()
        self.cfg = cfg
        d, p, ch = cfg["width"], cfg["patch"], cfg.get("channels", 3)
        self.text = TextEncoder(vocabulary, cfg["text"])
        self.patch_embed = nn.Linear(ch * p * p, d)
        self.time_embed = TimeEmbed(d)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg["depth"]))
        self.final = Final(d, ch * p * p)
        if cfg.get("pooled_text", False):
            # The mean of the prompt's encoded tokens joins the timestep in every adaLN: a
            # clip-wide condition, as a class label is in DiT. Registered last, so a checkpoint
            # without it still lines up with the optimiser's parameter order.
            self.text_pool = nn.Linear(cfg["text"]["width"], d)
        if "frame_phase" in cfg:
            # Where the window sits in a long video: the phase of its first frame joins the
            # timestep too, so that every window of a long render can lay its objects on one
            # shared path. Registered after text_pool for the same reason.
            self.phase_embed = nn.Linear(2 * cfg["frame_phase"]["harmonics"], d)
        if cfg.get("video_progress", False):
            # How far through the video the window lies (see progress_features): what a motion
            # spread over the whole video, such as growth, needs of each window. Registered last.
            self.progress_embed = nn.Linear(2, d)
        if cfg.get("frame_stride", False):
            # How far apart the window's frames lie in the video (see stride_features): a window
            # of keyframes spanning a whole long video, which a long render lays out first, moves
            # its objects as far as the video does. Registered last.
            self.stride_embed = nn.Linear(1, d)
        self.reset_parameters()

    def reset_parameters(self):
        """DiT's initialisation: Xavier linears, zero biases, and adaLN-Zero (every modulation and
        the final projection start at zero, so each block's gated paths start closed)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # Token embeddings as large as the sin-cos positions they are added to: at std 0.02 the
        # positions drowned the words, the encoder's output hardly depended on the prompt
        # (0.16 % between two unrelated prompts after 2,177 steps) and the denoiser learned
        # to ignore it.
        nn.init.normal_(self.text.token_embed.weight, std=1.0)
        nn.init.normal_(self.time_embed.fc1.weight, std=0.02)
        nn.init.normal_(self.time_embed.fc2.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaln.weight)
            nn.init.zeros_(block.adaln.bias)
        nn.init.zeros_(self.final.adaln.weight)
        nn.init.zeros_(self.final.adaln.bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)
        if hasattr(self, "text_pool"):
            # Zero: a model gains the path without changing what it computes.
            nn.init.zeros_(self.text_pool.weight)
            nn.init.zeros_(self.text_pool.bias)
        for name in ("phase_embed", "progress_embed", "stride_embed"):
            if hasattr(self, name):
                nn.init.zeros_(getattr(self, name).weight)
                nn.init.zeros_(getattr(self, name).bias)

    def pooled_text(self, context, mask):
        """The projected mean of each prompt's real tokens [B, D], or None without the path."""
        if not hasattr(self, "text_pool"):
            return None
        weights = mask.to(context.dtype)[..., None]
        return self.text_pool((context * weights).sum(dim=1) / weights.sum(dim=1))

    def frame_phase(self, first_frame, batch, like):
        """The projected phase of each window's first frame [B, D], or None without the path.
        `first_frame` [B] (None: every window starts the video)."""
        if not hasattr(self, "phase_embed"):
            return None
        if first_frame is None:
            first_frame = torch.zeros(batch)
        features = phase_features(first_frame, self.cfg["frame_phase"]["period"], self.cfg["frame_phase"]["harmonics"])
        return self.phase_embed(features.to(like))

    def video_progress(self, first_frame, video_frames, batch, like, stride=None):
        """The projected progress of each window through its video [B, D], or None without the
        path. `first_frame` and `video_frames` [B] (None: every window is the whole video),
        `stride` [B] (None: consecutive frames)."""
        if not hasattr(self, "progress_embed"):
            return None
        window = self.cfg["window_frames"]
        first_frame = torch.zeros(batch) if first_frame is None else first_frame
        video_frames = torch.full((batch,), window) if video_frames is None else video_frames
        return self.progress_embed(progress_features(first_frame, video_frames, window, stride).to(like))

    def frame_stride(self, stride, batch, like):
        """The projected stride of each window's frames [B, D], or None without the path.
        `stride` [B] (None: consecutive frames)."""
        if not hasattr(self, "stride_embed"):
            return None
        stride = torch.ones(batch) if stride is None else stride
        return self.stride_embed(stride_features(stride).to(like))

    def velocity(self, x, t, context, mask, first_frame=None, video_frames=None, stride=None):
        """x [B, F, C, H, W]; t [B]; context [B, L, Dt] with mask [B, L]; first_frame [B], the
        index in the whole video of each window's first frame (used with `frame_phase`),
        video_frames [B], each whole video's length (used with `video_progress`), and stride [B],
        how many video frames apart the window's frames lie (used with `frame_stride`)."""
        B, Fr, C, H, W = x.shape
        p, d = self.cfg["patch"], self.cfg["width"]
        gh, gw = H // p, W // p
        tokens = x.reshape(B, Fr, C, gh, p, gw, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(B, Fr, gh * gw, C * p * p)
        h = self.patch_embed(tokens) + video_positions(Fr, gh, gw, d).to(x)
        extra = [e for e in (self.pooled_text(context, mask), self.frame_phase(first_frame, B, x),
                             self.video_progress(first_frame, video_frames, B, x, stride),
                             self.frame_stride(stride, B, x)) if e is not None]
        c = self.time_embed(t, sum(extra) if extra else None)
        for block in self.blocks:
            h = block(h, c, context, mask)
        shift, scale = self.final.adaln(c)[:, None, None, :].chunk(2, dim=-1)
        out = self.final.linear(layer_norm(h) * (1 + scale) + shift)
        out = out.reshape(B, Fr, gh, gw, C, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(B, Fr, C, H, W)
        if self.cfg.get("prediction", "velocity") == "clean":
            # The network predicts the clean video; the velocity follows from it.
            return (x - out) / t.clamp(min=MINIMUM_PREDICTION_TIME)[:, None, None, None, None]
        return out
