"""Dev-time training of the Fashion-MNIST reference models (not used at run time).

Trains a small timm-style pre-norm ViT classifier, then fine-tunes the same backbone into a
retrieval encoder (L2-normalized 64-d embedding trained against learned class prototypes),
exports both to ONNX and writes their model cards. Run with Debian's python (torch 1.13):

  /usr/bin/python3 deploy/demo/training/vit_fmnist.py train-classifier
  /usr/bin/python3 deploy/demo/training/vit_fmnist.py train-encoder
  /usr/bin/python3 deploy/demo/training/vit_fmnist.py export

Deterministic given the seed and thread count (2 threads, CPU).
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.dirname(HERE)
MODELS = os.path.join(DEMO, 'models')
CHECKPOINTS = os.path.join(HERE, 'checkpoints')
DATA = os.environ.get('FMNIST_DIR', '/usr/share/datasets/fashion-mnist')

MEAN, STD = 0.2860, 0.3530
LABELS = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
          'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
ARCH = dict(image_size=28, patch_size=7, in_chans=1, dim=128, depth=6, heads=4, mlp_ratio=2)
EMBED_DIM = 64
SEED = 20261129


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack('>HBB', raw[:4])
    assert zero == 0 and dtype == 0x08, f'{path}: not a uint8 IDX file'
    dims = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split):
    prefix = 'train' if split == 'train' else 't10k'
    x = read_idx(os.path.join(DATA, f'{prefix}-images-idx3-ubyte.gz'))
    y = read_idx(os.path.join(DATA, f'{prefix}-labels-idx1-ubyte.gz'))
    x = (torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD
    return x.unsqueeze(1), torch.from_numpy(y.astype(np.int64))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """Pre-norm ViT; `head` maps the final class-token feature to logits or to an embedding."""

    def __init__(self, image_size, patch_size, in_chans, dim, depth, heads, mlp_ratio, out_dim, normalize):
        super().__init__()
        tokens = (image_size // patch_size) ** 2 + 1
        self.patch_embed = PatchEmbed(patch_size, in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, out_dim)
        self.normalize = normalize
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        out = self.head(x[:, 0])
        return F.normalize(out, dim=-1) if self.normalize else out


def make_classifier():
    return VisionTransformer(**ARCH, out_dim=len(LABELS), normalize=False)


def make_encoder():
    return VisionTransformer(**ARCH, out_dim=EMBED_DIM, normalize=True)


class PrototypeLoss(nn.Module):
    """Normalized softmax (CLIP-style) between embeddings and learned, normalized class prototypes."""

    def __init__(self, classes, dim, temperature=0.05):
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(classes, dim))
        self.temperature = temperature

    def forward(self, emb, y):
        logits = emb @ F.normalize(self.prototypes, dim=-1).t() / self.temperature
        return F.cross_entropy(logits, y)


def augment(x, gen):
    """Horizontal flip and a random shift of up to 2 px (zero padding in normalized space)."""
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    pad = 2
    background = -MEAN / STD
    padded = F.pad(x, (pad, pad, pad, pad), value=background)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(28)[None, :])  # [b, 28]
    cols = (dx[:, None] + torch.arange(28)[None, :])
    idx_b = torch.arange(b)[:, None, None]
    return padded[idx_b, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


def train(model, loss_fn, params, epochs, lr, batch_size, ckpt_name, warmup_steps, use_aug, stop_after=None):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    x, y = load_split('train')
    n = x.shape[0]
    steps_per_epoch = n // batch_size
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    ckpt_path = os.path.join(CHECKPOINTS, ckpt_name)
    start_epoch = 0
    if os.path.exists(ckpt_path):
        state = torch.load(ckpt_path)
        model.load_state_dict(state['model'])
        loss_fn.load_state_dict(state['loss'])
        opt.load_state_dict(state['opt'])
        sched.load_state_dict(state['sched'])
        gen.set_state(state['gen'])
        start_epoch = state['epoch']
        log(f'resumed from {ckpt_path} at epoch {start_epoch}')
    started = time.time()
    for epoch in range(start_epoch, min(epochs, stop_after or epochs)):
        model.train()
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        for step in range(steps_per_epoch):
            idx = perm[step * batch_size:(step + 1) * batch_size]
            xb = augment(x[idx], gen) if use_aug else x[idx]
            loss = loss_fn(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            running += loss.item()
            if (step + 1) % 50 == 0:
                rate = (step + 1 + (epoch - start_epoch) * steps_per_epoch) * batch_size / (time.time() - started)
                log(f'epoch {epoch + 1}/{epochs} step {step + 1}/{steps_per_epoch} '
                    f'loss {running / 50:.4f} lr {sched.get_last_lr()[0]:.2e} {rate:.0f} img/s')
                running = 0.0
        os.makedirs(CHECKPOINTS, exist_ok=True)
        torch.save({'model': model.state_dict(), 'loss': loss_fn.state_dict(), 'opt': opt.state_dict(),
                    'sched': sched.state_dict(), 'gen': gen.get_state(), 'epoch': epoch + 1}, ckpt_path)
        log(f'epoch {epoch + 1} done, checkpoint saved, elapsed {time.time() - started:.0f}s')
    return time.time() - started


class CrossEntropy(nn.Module):
    def __init__(self, smoothing):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits, y):
        return F.cross_entropy(logits, y, label_smoothing=self.smoothing)


def cmd_train_classifier(args):
    model = make_classifier()
    loss_fn = CrossEntropy(0.1)
    seconds = train(model, loss_fn, list(model.parameters()), args.epochs, args.lr, args.batch_size,
                    'classifier.pt', 200, not args.no_aug, args.stop_after)
    if args.stop_after:
        return
    torch.save(model.state_dict(), os.path.join(CHECKPOINTS, 'classifier-final.pt'))
    write_json(os.path.join(CHECKPOINTS, 'classifier-training.json'), {
        'epochs': args.epochs, 'lr': args.lr, 'batchSize': args.batch_size, 'augmentation': not args.no_aug,
        'labelSmoothing': 0.1, 'seconds': round(seconds), **({'note': args.note} if args.note else {})})


def cmd_train_encoder(args):
    """Starts from the trained classifier: patch embedding and the first depth-1 blocks stay frozen
    (their outputs are computed once and cached), the last block, the final norm and a new
    embedding head are trained against the class prototypes. A fraction of a full fine-tune's CPU."""
    torch.manual_seed(SEED)
    model = make_encoder()
    backbone = torch.load(args.init)
    backbone = backbone.get('model', backbone)  # a training checkpoint or a final state dict
    backbone = {k: v for k, v in backbone.items() if not k.startswith('head.')}
    missing = model.load_state_dict(backbone, strict=False)
    assert set(missing.missing_keys) == {'head.weight', 'head.bias'}, missing
    started = time.time()
    x, y = load_split('train')
    tokens = frozen_tokens(model, x)
    log(f'cached frozen features {tuple(tokens.shape)} in {time.time() - started:.0f}s')
    trainable = nn.ModuleDict({'block': model.blocks[-1], 'norm': model.norm, 'head': model.head})
    loss_fn = PrototypeLoss(len(LABELS), EMBED_DIM)
    params = list(trainable.parameters()) + list(loss_fn.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    n = tokens.shape[0]
    steps_per_epoch = n // args.batch_size
    total = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for epoch in range(args.epochs):
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
            feats = model.norm(model.blocks[-1](tokens[idx]))
            loss = loss_fn(F.normalize(model.head(feats[:, 0]), dim=-1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            running += loss.item()
            if (step + 1) % 100 == 0:
                log(f'encoder epoch {epoch + 1}/{args.epochs} step {step + 1}/{steps_per_epoch} loss {running / 100:.4f}')
                running = 0.0
    seconds = time.time() - started
    torch.save(model.state_dict(), os.path.join(CHECKPOINTS, 'encoder-final.pt'))
    write_json(os.path.join(CHECKPOINTS, 'encoder-training.json'), {
        'epochs': args.epochs, 'lr': args.lr, 'batchSize': args.batch_size, 'augmentation': False,
        'temperature': loss_fn.temperature,
        'initializedFrom': f'classifier weights {os.path.relpath(args.init, HERE)}',
        'trained': 'last transformer block, final LayerNorm, embedding head (Linear 128->64) and class prototypes; '
                   'patch embedding and blocks 1-5 frozen from the classifier',
        'seconds': round(seconds)})
    # The gallery embeddings come from the cached frozen features (same weights, same ops), which
    # saves a second pass of the frozen blocks over 60k images.
    gallery = embed_from_tokens(model, tokens)
    metrics = evaluate_encoder(model, gallery=(gallery, y))
    write_json(os.path.join(CHECKPOINTS, 'encoder-metrics.json'), metrics)
    log(f'encoder retrieval {metrics}')


def cmd_anneal_classifier(args):
    """Finishes a classifier checkpoint with a short linear learning-rate decay to 0 over random
    batches: the cheap substitute for the rest of a cosine schedule when CPU time runs out."""
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED + 1)
    model = make_classifier()
    state = torch.load(os.path.join(CHECKPOINTS, 'classifier.pt'))
    model.load_state_dict(state['model'])
    loss_fn = CrossEntropy(0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    opt.load_state_dict(state['opt'])
    for group in opt.param_groups:
        group['lr'] = args.lr
    x, y = load_split('train')
    started = time.time()
    model.train()
    for step in range(args.steps):
        for group in opt.param_groups:
            group['lr'] = args.lr * (1 - step / args.steps)
        idx = torch.randint(0, x.shape[0], (args.batch_size,), generator=gen)
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 10 == 0:
            log(f'anneal step {step + 1}/{args.steps} loss {loss.item():.4f}')
    torch.save(model.state_dict(), os.path.join(CHECKPOINTS, 'classifier-final.pt'))
    write_json(os.path.join(CHECKPOINTS, 'classifier-training.json'), {
        'epochs': state['epoch'], 'lr': 1e-3, 'batchSize': args.batch_size, 'augmentation': False, 'labelSmoothing': 0.1,
        'schedule': f'{state["epoch"]} epochs of a 7-epoch cosine schedule (warmup 200 steps, peak lr 1e-3), then '
                    f'{args.steps} steps of random batches with the learning rate decayed linearly from {args.lr} to 0',
        'note': 'the planned 7 epochs did not fit: the 2 shared CPU cores were heavily contended (epochs took 8-29 min)',
        'seconds': round(args.prior_seconds + time.time() - started)})


@torch.no_grad()
def embed_from_tokens(model, tokens, batch_size=500):
    model.eval()
    return torch.cat([F.normalize(model.head(model.norm(model.blocks[-1](tokens[i:i + batch_size]))[:, 0]), dim=-1)
                      for i in range(0, tokens.shape[0], batch_size)])


@torch.no_grad()
def frozen_tokens(model, x, batch_size=500):
    """Token features entering the last block, for every image."""
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        t = model.patch_embed(x[i:i + batch_size])
        t = torch.cat([model.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + model.pos_embed
        out.append(model.blocks[:-1](t))
    return torch.cat(out)


@torch.no_grad()
def predict(model, x, batch_size=500):
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def evaluate_classifier(model):
    x, y = load_split('test')
    logits = predict(model, x)
    top5 = logits.topk(5, dim=1).indices
    return {
        'top1': (top5[:, 0] == y).float().mean().item(),
        'top5': (top5 == y[:, None]).any(dim=1).float().mean().item(),
        'sample1000Top1': (top5[:1000, 0] == y[:1000]).float().mean().item(),
        'testImages': int(x.shape[0]),
    }


def retrieval_metrics(q, qy, g, gy, chunk=250):
    """Recall@k: a query scores when any of its k nearest gallery items shares its class.
    AP over the full ranking (cosine similarity, descending), relevance = same class."""
    hits1 = hits5 = 0
    ap_sum = 0.0
    for i in range(0, q.shape[0], chunk):
        sims = q[i:i + chunk] @ g.t()
        order = sims.argsort(dim=1, descending=True)
        rel = (gy[order] == qy[i:i + chunk, None]).double()
        hits1 += rel[:, :1].any(dim=1).sum().item()
        hits5 += rel[:, :5].any(dim=1).sum().item()
        cum = rel.cumsum(dim=1)
        ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
        ap_sum += ((cum / ranks) * rel).sum(dim=1).div(rel.sum(dim=1).clamp(min=1)).sum().item()
    n = q.shape[0]
    return {'recallAt1': hits1 / n, 'recallAt5': hits5 / n, 'mAP': ap_sum / n}


def evaluate_encoder(model, gallery=None):
    """`gallery`: precomputed (embeddings, labels) of the train split, else computed here."""
    xq, yq = load_split('test')
    if gallery is None:
        xg, yg = load_split('train')
        gallery = (predict(model, xg), yg)
    g, yg = gallery
    q = predict(model, xq)
    metrics = retrieval_metrics(q, yq, g, yg)
    metrics.update({'queries': int(q.shape[0]), 'gallery': int(g.shape[0])})
    # The committed sample: first 1000 test queries against the first 1024 train images.
    sample_metrics = retrieval_metrics(q[:1000], yq[:1000], g[:1024], yg[:1024])
    metrics.update({f'sample{k[0].upper()}{k[1:]}': v for k, v in sample_metrics.items()})
    return metrics


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


REPO = os.path.dirname(os.path.dirname(DEMO))
REFERENCE_OUTPUTS = os.path.join(REPO, 'test', 'fixtures', 'demo-models', 'reference-outputs.json')
SAMPLE = os.path.join(DEMO, 'data', 'fashion-mnist')
PREPROCESSING = {'inputName': 'input', 'layout': 'NCHW', 'height': 28, 'width': 28, 'channels': 1,
                 'mean': [MEAN], 'std': [STD]}
REFERENCE_IMAGES = 8


def export_onnx(model, path, output_name, opset):
    model.eval()
    dummy = torch.zeros(2, 1, 28, 28)
    torch.onnx.export(model, dummy, path, opset_version=opset, input_names=['input'], output_names=[output_name],
                      dynamic_axes={'input': {0: 'batch'}, output_name: {0: 'batch'}}, do_constant_folding=True)
    import onnx
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    ops = sorted({n.op_type for n in graph.graph.node})
    return {'opset': opset, 'input': 'input', 'output': output_name, 'dynamicBatch': True,
            'layerNorm': 'LayerNormalization' if 'LayerNormalization' in ops else 'decomposed (ReduceMean/Sub/Pow/Sqrt/Div)',
            'gelu': 'Erf' if 'Erf' in ops else 'other', 'opTypes': ops,
            'exporter': f'torch.onnx.export (torch {torch.__version__})', 'sizeBytes': os.path.getsize(path)}


def architecture(model, head):
    return {'family': 'ViT, timm-style pre-norm blocks', 'imageSize': 28, 'patchSize': 7, 'patchEmbedding': 'Conv2d(1, 128, 7, stride 7)',
            'tokens': 17, 'classToken': True, 'positionEmbedding': 'learned, 17 x 128', 'dim': ARCH['dim'],
            'depth': ARCH['depth'], 'heads': ARCH['heads'], 'mlpRatio': ARCH['mlp_ratio'],
            'attention': 'fused qkv Linear, softmax(QK^T / sqrt(32)) V, proj Linear', 'mlp': 'Linear, GELU (erf), Linear',
            'norm': 'LayerNorm eps 1e-6 (pre-norm, plus a final LayerNorm)', 'head': head,
            'parameters': sum(p.numel() for p in model.parameters())}


def regenerate_text():
    run = '/usr/bin/python3 deploy/demo/training/vit_fmnist.py'
    ckpt = 'deploy/demo/training/checkpoints'
    return (f'{run} train-classifier --no-aug --epochs 7 --stop-after 2 && '
            f'cp {ckpt}/classifier.pt {ckpt}/classifier-epoch2.pt && '
            f'{run} train-encoder --epochs 1 --init {ckpt}/classifier-epoch2.pt && '
            f'{run} anneal-classifier --steps 40 --prior-seconds 2227 && '
            f'{run} export '
            '(Fashion-MNIST from /usr/share/datasets/fashion-mnist, Debian package dataset-fashion-mnist)')


def sample_inputs():
    x = read_idx(os.path.join(SAMPLE, 't10k-images-idx3-ubyte.gz'))[:REFERENCE_IMAGES]
    return ((torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD).unsqueeze(1)


def cmd_export(_args):
    os.makedirs(MODELS, exist_ok=True)
    references = {'images': f'first {REFERENCE_IMAGES} images of {os.path.relpath(SAMPLE, REPO)}/t10k-images-idx3-ubyte.gz',
                  'models': {}}
    xs = sample_inputs()

    classifier = make_classifier()
    classifier.load_state_dict(torch.load(os.path.join(CHECKPOINTS, 'classifier-final.pt')))
    classifier.eval()
    cls_metrics = evaluate_classifier(classifier)
    log(f'classifier {cls_metrics}')
    with open(os.path.join(CHECKPOINTS, 'classifier-training.json')) as f:
        cls_training = json.load(f)
    for opset in (17, 13):
        name = f'vit-fmnist-cls-op{opset}'
        onnx_info = export_onnx(classifier, os.path.join(MODELS, name + '.onnx'), 'logits', opset)
        write_json(os.path.join(MODELS, name + '.card.json'), {
            'name': name, 'task': 'CLASSIFICATION', 'description': 'Fashion-MNIST 10-class ViT classifier (reference model)',
            'architecture': architecture(classifier, 'Linear(128, 10) on the class token'), 'onnx': onnx_info,
            'preprocessing': PREPROCESSING, 'labels': LABELS, 'output': 'logits',
            'metrics': {**cls_metrics, 'measuredWith': 'PyTorch (fp32) on the full Fashion-MNIST test split; '
                        'sample1000Top1 on the first 1000 test images (deploy/demo/data/fashion-mnist)'},
            'training': {**cls_training, 'data': 'Fashion-MNIST train split (60000 images)', 'optimizer': 'AdamW, wd 0.05, cosine, warmup 200 steps',
                         'hardware': 'CPU, 2 threads', 'seed': SEED},
            'dataset': 'Fashion-MNIST, Xiao, Rasul, Vollgraf 2017 (arXiv:1708.07747), MIT license',
            'regenerate': regenerate_text()})
        with torch.no_grad():
            references['models'][name + '.onnx'] = classifier(xs).tolist()

    encoder = make_encoder()
    encoder.load_state_dict(torch.load(os.path.join(CHECKPOINTS, 'encoder-final.pt')))
    encoder.eval()
    with open(os.path.join(CHECKPOINTS, 'encoder-metrics.json')) as f:
        emb_metrics = json.load(f)
    with open(os.path.join(CHECKPOINTS, 'encoder-training.json')) as f:
        emb_training = json.load(f)
    name = 'vit-fmnist-emb-op17'
    onnx_info = export_onnx(encoder, os.path.join(MODELS, name + '.onnx'), 'embedding', 17)
    write_json(os.path.join(MODELS, name + '.card.json'), {
        'name': name, 'task': 'RETRIEVAL', 'description': 'Fashion-MNIST ViT image encoder, 64-d L2-normalized embedding (reference model)',
        'architecture': architecture(encoder, f'Linear(128, {EMBED_DIM}) on the class token, then L2 normalization'),
        'onnx': onnx_info, 'preprocessing': PREPROCESSING, 'labels': LABELS, 'output': 'embedding', 'embeddingDim': EMBED_DIM,
        'metrics': {**emb_metrics, 'measuredWith': 'PyTorch (fp32): the 10000 test images as queries against the 60000 train '
                    'images as gallery, cosine similarity, relevance = same class; recall@k = a relevant item among the k nearest; '
                    'mAP over the full ranking. sample* = first 1000 test queries against the first 1024 train images (committed sample)'},
        'training': {**emb_training, 'data': 'Fashion-MNIST train split (60000 images)',
                     'loss': 'normalized softmax (CLIP-style) against 10 learned L2-normalized class prototypes',
                     'optimizer': 'AdamW, wd 0.05, cosine, warmup 100 steps', 'hardware': 'CPU, 2 threads', 'seed': SEED},
        'dataset': 'Fashion-MNIST, Xiao, Rasul, Vollgraf 2017 (arXiv:1708.07747), MIT license',
        'regenerate': regenerate_text()})
    with torch.no_grad():
        references['models'][name + '.onnx'] = encoder(xs).tolist()
    os.makedirs(os.path.dirname(REFERENCE_OUTPUTS), exist_ok=True)
    write_json(REFERENCE_OUTPUTS, references)
    log('exported')


if __name__ == '__main__':
    torch.set_num_threads(2)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='cmd', required=True)
    for name, epochs, lr in [('train-classifier', 7, 1e-3), ('train-encoder', 1, 1e-3)]:
        p = sub.add_parser(name)
        p.add_argument('--epochs', type=int, default=epochs)
        p.add_argument('--lr', type=float, default=lr)
        p.add_argument('--batch-size', type=int, default=128)
        if name == 'train-classifier':
            p.add_argument('--no-aug', action='store_true', help='no flips or shifts (what the reference model used)')
            p.add_argument('--note', help='recorded in the training record, e.g. a change of schedule on resume')
            p.add_argument('--stop-after', type=int, help='stop after this epoch (checkpointed; rerun to resume)')
        else:
            p.add_argument('--init', default=os.path.join(CHECKPOINTS, 'classifier-final.pt'),
                           help='classifier weights to start from (a final state dict or a training checkpoint)')
    p = sub.add_parser('anneal-classifier')
    p.add_argument('--steps', type=int, default=100)
    p.add_argument('--lr', type=float, default=3e-4)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--prior-seconds', type=float, default=0, help='training time already spent, for the record')
    sub.add_parser('bench')
    sub.add_parser('export')
    args = parser.parse_args()
    if args.cmd == 'train-classifier':
        cmd_train_classifier(args)
    elif args.cmd == 'train-encoder':
        cmd_train_encoder(args)
    elif args.cmd == 'anneal-classifier':
        cmd_anneal_classifier(args)
    elif args.cmd == 'export':
        cmd_export(args)
    elif args.cmd == 'bench':
        torch.manual_seed(SEED)
        m = make_classifier()
        print('params', sum(p.numel() for p in m.parameters()))
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        x = torch.randn(128, 1, 28, 28)
        y = torch.randint(0, 10, (128,))
        gen = torch.Generator().manual_seed(0)
        for i in range(12):
            if i == 2:
                t = time.time()
            loss = F.cross_entropy(m(augment(x, gen)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f'{10 * 128 / (time.time() - t):.0f} img/s')
