"""MLflow models-from-code entry point of :mod:`recsys.serving` (MLflow copies this file into
the logged model and runs it at load time; nothing is pickled)."""

import mlflow

from recsys.serving import RecsysPyfunc

mlflow.models.set_model(RecsysPyfunc())
