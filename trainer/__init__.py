"""Training: configs, networks built by name, and run directories."""
