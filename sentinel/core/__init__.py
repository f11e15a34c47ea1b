"""The pure core: parsing, fingerprinting, classification, impact and safety decisions. No I/O."""
