"""safetensors and PNG files written with the standard library and NumPy, atomically."""
import json
import os
import struct
import zlib

import numpy as np


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = data.tobytes()
        header[name] = {"dtype": "F32", "shape": list(data.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, sort_keys=True).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    atomic_write(path, struct.pack("<Q", len(text)) + text + b"".join(chunks))


def read_safetensors(path, with_metadata=False):
    """The float32 tensors of a safetensors file by name; with `with_metadata`, also its
    `__metadata__` strings (empty when it has none)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, entry in header.items():
        a, b = entry["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + a:8 + n + b], dtype="<f4").reshape(entry["shape"]).copy()
    return (out, metadata) if with_metadata else out


def atomic_write(path, data):
    temporary = "%s.partial-%d" % (path, os.getpid())
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def write_png(path, rgb):
    """rgb: uint8 [H, W, 3]."""
    height, width, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[y].tobytes() for y in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    atomic_write(path, png)


# A 3x5 pixel font for the plot's labels: each glyph is five rows of three bits.
GLYPHS = {
    "0": "111 101 101 101 111", "1": "010 110 010 010 111", "2": "111 001 111 100 111",
    "3": "111 001 111 001 111", "4": "101 101 111 001 001", "5": "111 100 111 001 111",
    "6": "111 100 111 101 111", "7": "111 001 001 001 001", "8": "111 101 111 101 111",
    "9": "111 101 111 001 111", ".": "000 000 000 000 010", " ": "000 000 000 000 000",
    "l": "100 100 100 100 111", "o": "000 111 101 101 111", "s": "000 111 110 011 111",
    "t": "010 111 010 010 011", "e": "000 111 111 100 111", "p": "000 111 101 111 100",
}


def draw_text(image, text, x, y, scale=2, color=(0, 0, 0)):
    """Writes `text` with its top-left corner at (x, y)."""
    for k, character in enumerate(text):
        rows = GLYPHS[character].split()
        for row, bits in enumerate(rows):
            for column, bit in enumerate(bits):
                if bit == "1":
                    top, left = y + row * scale, x + (4 * k + column) * scale
                    image[top:top + scale, left:left + scale] = color


def plot_loss(path, steps, losses, width=640, height=320):
    """A line plot of the loss (and its running mean) over steps, as a PNG, with the loss range
    on the left axis and the step range on the bottom one."""
    image = np.full((height, width, 3), 255, np.uint8)
    if len(steps) < 2:
        write_png(path, image)
        return
    left, margin = 56, 24
    losses = np.asarray(losses, np.float64)
    smooth = np.convolve(losses, np.ones(25) / 25, mode="valid") if len(losses) > 25 else losses
    top, bottom = float(np.percentile(losses, 99)), float(losses.min())
    span = max(top - bottom, 1e-9)

    def point(i, value, count):
        x = left + int((width - left - margin) * i / max(count - 1, 1))
        y = height - margin - int((height - 2 * margin) * (min(value, top) - bottom) / span)
        return x, y

    image[height - margin, left:width - margin] = 0
    image[margin:height - margin, left] = 0
    draw_text(image, "loss", 4, 4)
    draw_text(image, "%.3f" % top, 4, margin)
    draw_text(image, "%.3f" % bottom, 4, height - margin - 10)
    first, last = "%d" % steps[0], "%d" % steps[-1]
    draw_text(image, first, left, height - margin + 6)
    draw_text(image, "step", (left + width - margin) // 2 - 16, height - margin + 6)
    draw_text(image, last, width - margin - 8 * len(last), height - margin + 6)
    for series, color in ((losses, (170, 190, 230)), (smooth, (20, 60, 160))):
        previous = None
        for i, value in enumerate(series):
            x, y = point(i + (len(losses) - len(series)) // 2, value, len(losses))
            if previous is not None:
                for t in np.linspace(0, 1, 8):
                    image[int(previous[1] + (y - previous[1]) * t), int(previous[0] + (x - previous[0]) * t)] = color
            previous = (x, y)
    write_png(path, image)
