"""The runtime that ships inside every submission zip.

`package.RUNTIME_FILES` (model.py, manifest.py, networks.py, applications.py, scratch_networks.py,
tta.py, compiled.py) are copied into the zip as they are; they import nothing from codapack. The
trainer builds networks with the same `networks.build_network`, so training and the platform run
one code path.
"""
