"""StyleGAN2 networks: layers, mapping, synthesis, discriminator, presets."""
