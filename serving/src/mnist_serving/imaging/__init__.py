"""Images to model input: decoding with its limits, and the one preprocessing.

Imports only core/.
"""
