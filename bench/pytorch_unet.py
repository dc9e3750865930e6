#!/usr/bin/env python3
"""PyTorch twin of `fewstep bench unet --config configs/mnist.toml`.

Defines the same U-Net, EDM preconditioning, EDM loss, Adam step and guided (CFG) denoiser
evaluation as fewstep's MNIST teacher and times them the same way, so the two programs measure
the same work on the same machine and threads (issue #6). See bench/README.md.

    python bench/pytorch_unet.py [--batch 64] [--reps 5] [--threads N] [--device cuda] [--json] [--compile]
"""

import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# configs/mnist.toml: [data] (MNIST, 1×28×28), [model], [diffusion]
CHANNELS, HEIGHT, WIDTH = 1, 28, 28
NUM_CLASSES = 10  # + 1 learned null class
MODEL = dict(
    model_channels=32,
    channel_mult=(1, 2, 2),
    num_blocks=1,
    attn_resolutions=(7,),
    attn_heads=1,
    dropout=0.0,
    norm_groups=8,
    noise_embedding_scale=250.0,
    extra_embedding_scale=100.0,
)
SIGMA_DATA, P_MEAN, P_STD = 0.5, -1.2, 1.2


def zero_init(m):
    """burn's `Initializer::Zeros` (weight and bias)."""
    nn.init.zeros_(m.weight)
    nn.init.zeros_(m.bias)
    return m


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


# teacher/src/unet/embedding.rs
def sinusoidal(x, dim, scale, max_positions=10_000.0):
    """[cos(s·x·f_k), sin(s·x·f_k)], f_k = (1/max_positions)^(k/(half−1)); `[n]` → `[n, dim]`."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float64)
    freqs = (1.0 / max_positions) ** (k / (max(half, 2) - 1))
    args = (x * scale).reshape(-1, 1) * freqs.to(x.device, x.dtype).reshape(1, half)
    return torch.cat([args.cos(), args.sin()], dim=1)


# teacher/src/unet/attention.rs
class Attention(nn.Module):
    """GroupNorm → 1×1 qkv → softmax(q·kᵀ/√d)·v → 1×1 proj (zero-init) → residual, × 1/√2."""

    def __init__(self, channels, heads, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-5)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))
        self.heads = heads

    def forward(self, x):
        n, c, h, w = x.shape
        hd = c // self.heads
        # [n, 3, heads, hd, hw] → three [n, heads, hw, hd] (same channel layout as the Rust code)
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, hd, h * w)
        q, k, v = (qkv[:, i].transpose(2, 3) for i in range(3))
        attn = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(hd), dim=3)
        out = (attn @ v).transpose(2, 3).reshape(n, c, h, w)
        return (x + self.proj(out)) * math.sqrt(0.5)


# teacher/src/unet/blocks.rs: ResBlock
class ResBlock(nn.Module):
    """GN → SiLU → conv → (+ emb) → GN → SiLU → dropout → conv (zero-init), 1×1 skip if cin ≠ cout,
    sum × 1/√2, then optional attention."""

    def __init__(self, cin, cout, emb_dim, groups, dropout, attn_heads=None):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = conv3x3(cin, cout)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(conv3x3(cout, cout))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.attn = Attention(cout, attn_heads, groups) if attn_heads is not None else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = self.skip(x) if self.skip is not None else x
        out = (h + skip) * math.sqrt(0.5)
        return self.attn(out) if self.attn is not None else out


# teacher/src/unet/blocks.rs: Downsample / Upsample
class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = conv3x3(channels, channels, stride=2)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest 2× by reshape + expand (as the Rust code), then a 3×3 conv."""

    def __init__(self, channels):
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x):
        n, c, h, w = x.shape
        up = x.reshape(n, c, h, 1, w, 1).expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)
        return self.conv(up)


# teacher/src/unet/mod.rs: UNetConfig::init and UNet::forward
class UNet(nn.Module):
    def __init__(self, channels, height, num_classes, model_channels, channel_mult, num_blocks,
                 attn_resolutions, attn_heads, dropout, norm_groups, noise_embedding_scale,
                 extra_embedding_scale):
        super().__init__()
        ch = model_channels
        emb_dim = 4 * ch
        self.m = 1 << max(len(channel_mult) - 1, 0)  # pad H, W to a multiple of 2^(levels−1)
        res = -(-height // self.m) * self.m

        def block(cin, cout, res, heads=None):
            if heads is None and res in attn_resolutions:
                heads = attn_heads
            return ResBlock(cin, cout, emb_dim, norm_groups, dropout, heads)

        self.enc_blocks, self.enc_down = nn.ModuleList(), nn.ModuleList()
        skips, cur = [ch], ch
        for level, mult in enumerate(channel_mult):
            blocks = nn.ModuleList()
            for _ in range(num_blocks):
                blocks.append(block(cur, ch * mult, res))
                cur = ch * mult
                skips.append(cur)
            self.enc_blocks.append(blocks)
            if level + 1 < len(channel_mult):
                skips.append(cur)
                self.enc_down.append(Downsample(cur))
                res //= 2
            else:
                self.enc_down.append(nn.Identity())
        # The first middle block always has attention; the second only at an attention resolution.
        self.mid = nn.ModuleList([block(cur, cur, res, heads=attn_heads), block(cur, cur, res)])
        self.dec_blocks, self.dec_up = nn.ModuleList(), nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            blocks = nn.ModuleList()
            for _ in range(num_blocks + 1):
                blocks.append(block(cur + skips.pop(), ch * mult, res))
                cur = ch * mult
            self.dec_blocks.append(blocks)
            if level > 0:
                self.dec_up.append(Upsample(cur))
                res *= 2
            else:
                self.dec_up.append(nn.Identity())
        self.conv_in = conv3x3(channels, ch)
        self.noise_mlp = nn.ModuleList([nn.Linear(ch, emb_dim), nn.Linear(emb_dim, emb_dim)])
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim)  # N(0, 1) init, as burn
        # The extra scalar slot (zero-init); the teacher passes extra = None, so it is never used,
        # but its parameters count (and get no gradient, so Adam skips them in both programs).
        self.extra_mlp = zero_init(nn.Linear(ch, emb_dim))
        self.norm_out = nn.GroupNorm(norm_groups, cur, eps=1e-5)
        self.conv_out = zero_init(conv3x3(cur, channels))
        self.ch = ch
        self.noise_scale, self.extra_scale = noise_embedding_scale, extra_embedding_scale

    def forward(self, x, c_noise, cls, extra=None):
        n, _, h, w = x.shape
        emb = sinusoidal(c_noise, self.ch, self.noise_scale)
        emb = self.noise_mlp[1](F.silu(self.noise_mlp[0](emb)))
        emb = emb + self.class_emb(cls)
        if extra is not None:
            emb = emb + self.extra_mlp(sinusoidal(extra, self.ch, self.extra_scale))
        emb = F.silu(emb)

        ph, pw = -(-h // self.m) * self.m - h, -(-w // self.m) * self.m - w
        if ph + pw > 0:  # (28×28 with 3 levels: multiple of 4, no padding)
            x = F.pad(x, (0, pw, 0, ph))

        hcur = self.conv_in(x)
        skips = [hcur]
        for blocks, down in zip(self.enc_blocks, self.enc_down):
            for b in blocks:
                hcur = b(hcur, emb)
                skips.append(hcur)
            if not isinstance(down, nn.Identity):
                hcur = down(hcur)
                skips.append(hcur)
        for b in self.mid:
            hcur = b(hcur, emb)
        for blocks, up in zip(self.dec_blocks, self.dec_up):
            for b in blocks:
                hcur = b(torch.cat([hcur, skips.pop()], dim=1), emb)
            hcur = up(hcur)
        out = self.conv_out(F.silu(self.norm_out(hcur)))
        return out[:, :, :h, :w] if ph + pw > 0 else out


# teacher/src/model.rs (EdmModel::forward) + teacher/src/edm/precond.rs (Precond::Edm)
class EdmModel(nn.Module):
    def __init__(self, unet, sigma_data=SIGMA_DATA):
        super().__init__()
        self.unet, self.sigma_data = unet, sigma_data

    def forward(self, x, sigma, cls, extra=None):
        sd2 = self.sigma_data**2
        root = (sigma * sigma + sd2).sqrt()
        c_in, c_noise = 1.0 / root, sigma.log() / 4.0
        c_skip, c_out = sd2 / (sigma * sigma + sd2), sigma / root * self.sigma_data
        f = self.unet(x * c_in.view(-1, 1, 1, 1), c_noise, cls, extra)
        return x * c_skip.view(-1, 1, 1, 1) + f * c_out.view(-1, 1, 1, 1)


# teacher/src/edm/loss.rs: edm_loss (per example)
def edm_loss(model, y, cls, normals, noise, sigma_data=SIGMA_DATA):
    sigma = (normals * P_STD + P_MEAN).exp()
    weight = (sigma * sigma + sigma_data**2) / (sigma * sigma * sigma_data**2)
    d = model(y + noise * sigma.view(-1, 1, 1, 1), sigma, cls)
    return (d - y).square().reshape(y.shape[0], -1).mean(dim=1) * weight


# teacher/src/edm/guidance.rs: cond_and_uncond + cfg (one batch of 2n)
def guided_denoise(model, x, sigma, cls, w, null_class):
    n = x.shape[0]
    out = model(torch.cat([x, x]), torch.cat([sigma, sigma]),
                torch.cat([cls, torch.full_like(cls, null_class)]))
    d_cond, d_uncond = out[:n], out[n:]
    return d_uncond + (d_cond - d_uncond) * w


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64, help="train.batch_size of configs/mnist.toml")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions after one warm-up")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead")
    ap.add_argument("--compile", action="store_true",
                    help="time torch.compile(model) (two warm-ups: compilation is not timed)")
    a = ap.parse_args()
    dev = torch.device(a.device)

    def sync():
        # GPU work is queued: wait for it before reading the clock.
        if dev.type == "cuda":
            torch.cuda.synchronize()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    b, reps = a.batch, max(a.reps, 1)
    dims = (b, CHANNELS, HEIGHT, WIDTH)

    # src/commands.rs: bench_unet
    model = EdmModel(UNet(CHANNELS, HEIGHT, NUM_CLASSES, **MODEL)).to(dev)
    params = sum(p.numel() for p in model.parameters())
    net = torch.compile(model) if a.compile else model
    warm = 2 if a.compile else 1
    if not a.json:
        print(f"U-Net of `configs/mnist.toml` (PyTorch {torch.__version__}, {a.device}, "
              f"{a.threads} threads): "
              f"{params} parameters, batch {b} × {CHANNELS}×{HEIGHT}×{WIDTH}")
    # burn's AdamConfig::new(): β = (0.9, 0.999), ε = 1e-5; lr 1e-4 as in bench_unet.
    optim = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-5)
    labels = torch.arange(b, device=dev) % NUM_CLASSES
    randn = lambda: torch.randn(dims, device=dev)  # noqa: E731

    train_times = []
    model.train()
    for rep in range(reps + warm):
        t = time.perf_counter()
        # normals = zeros as in bench_unet, so σ = exp(P_mean) for every example.
        loss = edm_loss(net, randn(), labels, torch.zeros(b, device=dev), randn()).mean()
        loss.item()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        sync()
        if rep >= warm:
            train_times.append(time.perf_counter() - t)

    sample_times = []
    model.eval()
    with torch.no_grad():
        for rep in range(reps + warm):
            t = time.perf_counter()
            d = guided_denoise(net, randn(), torch.full((b,), 1.0, device=dev), labels,
                               w=2.0, null_class=NUM_CLASSES)
            d.cpu().numpy()
            if rep >= warm:
                sample_times.append(time.perf_counter() - t)

    tt, ts = statistics.median(train_times), statistics.median(sample_times)
    if a.json:
        print(json.dumps(dict(params=params, batch=b, threads=a.threads, device=a.device,
                              train_img_per_s=b / tt, sample_img_per_s=b / ts,
                              torch_version=torch.__version__, compiled=a.compile)))
        return
    print(f"train step:          {tt * 1e3:8.1f} ms  → {b / tt:8.1f} img/s (fwd + bwd + Adam)"
          f"  [min {b / max(train_times):.1f}, max {b / min(train_times):.1f} img/s]")
    print(f"guided sampling step:{ts * 1e3:8.1f} ms  → {b / ts:8.1f} img/s (2 NFE per image)"
          f"  [min {b / max(sample_times):.1f}, max {b / min(sample_times):.1f} img/s]")
    print(f"→ 50 guided steps for 1,000 images ≈ {ts * 50.0 * 1000.0 / b:.1f} s")


if __name__ == "__main__":
    main()
