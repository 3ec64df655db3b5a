"""The runtime that ships inside every submission zip.

`model.py` and `networks.py` are copied into the zip as they are; they import
nothing from codapack. The trainer builds networks with the same
`networks.build_network`, so training and the platform run one code path.
"""
