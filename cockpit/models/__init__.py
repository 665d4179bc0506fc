"""Models: finding and loading a base model (bundled, local, GGUF, hub), the catalog of their
architecture numbers, and greedy generation.
"""
