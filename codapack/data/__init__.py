"""The data stage: inspection, cleaning, and the augmentation layers used offline and in training."""
