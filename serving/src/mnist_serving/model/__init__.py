"""The model: its card (the training contract), LiteRT runtime, location, reloads.

Imports core/ only; never the HTTP layer.
"""
