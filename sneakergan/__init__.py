"""sneakergan: scraped sneaker photos -> StyleGAN2-ADA -> "This Sneaker Does Not Exist"."""

__version__ = "0.1.0"
