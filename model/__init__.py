"""BSMamba2, the network: `bsmamba2` (config, presets, band split, dual-path blocks, mask head), `mamba2` (the
mixer), `ssd` (its scan), `kernels` (optional CUDA kernels), `stft` (the official audio front end), `loss`.

`weights/` says where weights come from; `inference/` runs the network on songs (`python -m model` is the CLI).
"""
