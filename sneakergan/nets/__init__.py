"""StyleGAN2 networks: layers, mapping, synthesis, discriminator, presets."""

from .config import PRESETS, NetworkConfig, Preset, TrainingDefaults, get_preset, preset
from .discriminator import Discriminator
from .generator import Generator, count_parameters
from .synthesis import NOISE_MODES, StyleLayer

__all__ = [
    "PRESETS", "NetworkConfig", "Preset", "TrainingDefaults", "get_preset", "preset",
    "Discriminator", "Generator", "count_parameters", "NOISE_MODES", "StyleLayer",
]
