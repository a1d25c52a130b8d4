"""Lowest layer: settings, errors, logging, metrics, security and the ASGI middleware.

Nothing here imports imaging/, model/ or api/.
"""
