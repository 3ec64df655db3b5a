"""Training: configs and recipes, networks built by name from the registry, run directories, search,
cross-validation and bagging."""
