"""The baseline every inference figure is measured against: the course template's zip."""

import os
import zipfile

from codapack.tools.course_template import COURSE_TEMPLATE_MODEL
from codapack.trainer.run_dir import load_run_network


def template_zip(run, folder):
    """The course template's zip (`load_model("weights.keras")`) for the same trained weights.

    Returns:
        (zip path, bytes of its `.keras` file).
    """
    keras_path = os.path.join(folder, "weights.keras")
    load_run_network(run).save(keras_path)
    path = os.path.join(folder, "template.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.py", COURSE_TEMPLATE_MODEL)
        archive.write(keras_path, "weights.keras")
    return path, os.path.getsize(keras_path)
