"""nesgan: NES screenshots in, new 16x16 tiles for Tiled Map Editor out."""

__version__ = "0.1.0"
HOMEPAGE = "https://github.com/nesgan/nesgan"
