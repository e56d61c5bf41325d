"""Code that runs in template and worker processes, never in the front-end.

It imports only ``wire``, ``errors`` and ``_core`` from the rest of the package, so a
worker never loads the front-end.
"""
