"""The course's own `model.py` template: load `weights.keras` by a relative path, predict, argmax.

Teams submitted zips built this way; the harness must run them, and the
benchmarks compare codapack's packaged runtime with it on the same weights.
"""

COURSE_TEMPLATE_MODEL = '''
import numpy as np
import keras


class Model:
    def __init__(self):
        self.neural_network = keras.models.load_model("weights.keras")

    def predict(self, X):
        preds = self.neural_network.predict(X, verbose=0)
        if len(preds.shape) == 2:
            preds = np.argmax(preds, axis=1)
        return preds
'''
