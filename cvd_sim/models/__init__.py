"""Models: STORM-VAE (VAE + Gaussian decoder) and the CVD-STORM DiT."""
