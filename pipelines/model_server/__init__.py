"""The model server of the inference image: SageMaker's inference container contract.

`serve` (the image's command; `python -m pipelines.model_server serve` from a checkout) runs
gunicorn on port 8080 with one worker per CPU. `GET /ping` answers 200 with an empty body once the
model in /opt/ml/model is loaded; `POST /invocations` answers through the model's own
code/inference.py (pipelines/steps/inference.py, copied into every artifact by the train step), so
what the evaluation measured is what is served. It imports only the standard library, gunicorn and
that inference module: never the CLI, the stacks or the local AWS.
"""
