"""Talking to a trained model beside its base model and its exported GGUF.
"""
