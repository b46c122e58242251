"""Pure image and model code: decoding, super-resolution, the enhance pipeline.

Never imports ``server`` or any web framework; the server imports these packages through their
``__init__`` faces.
"""
