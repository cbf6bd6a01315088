"""Training: stage-1 (STORM-VAE) and stage-2 (DiT) trainers, losses, config presets."""
