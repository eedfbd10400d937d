"""FastAPI facade: one HTTP API in front of the two TorchServe models.

`create_app(settings)` in `frontend_api.app` builds the application; `python -m
frontend_api` runs it with uvicorn, and `python -m frontend_api stack` starts
TorchServe and the facade together.
"""
