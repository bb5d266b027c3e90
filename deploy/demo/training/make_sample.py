"""Writes the committed Fashion-MNIST sample: the first 1000 test and first 1024 train images
(with labels) from the Debian package, as gzipped IDX files with the package's file names.

  /usr/bin/python3 deploy/demo/training/make_sample.py
"""
import gzip
import os
import struct

SOURCE = os.environ.get('FMNIST_DIR', '/usr/share/datasets/fashion-mnist')
TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'fashion-mnist')
COUNTS = {'t10k': 1000, 'train': 1024}


def truncate_idx(name, count):
    with gzip.open(os.path.join(SOURCE, name), 'rb') as f:
        raw = f.read()
    ndim = raw[3]
    dims = list(struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim]))
    item = 1
    for d in dims[1:]:
        item *= d
    header = raw[:4] + struct.pack('>' + 'I' * ndim, count, *dims[1:])
    body = raw[4 + 4 * ndim:4 + 4 * ndim + count * item]
    # mtime=0 keeps the gzip bytes reproducible.
    with gzip.GzipFile(os.path.join(TARGET, name), 'wb', compresslevel=9, mtime=0) as f:
        f.write(header + body)


if __name__ == '__main__':
    os.makedirs(TARGET, exist_ok=True)
    for prefix, count in COUNTS.items():
        truncate_idx(f'{prefix}-images-idx3-ubyte.gz', count)
        truncate_idx(f'{prefix}-labels-idx1-ubyte.gz', count)
