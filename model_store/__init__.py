"""TorchServe model archives, their configuration and the server launcher.

`python -m model_store --help` lists the commands: build the archives, start and stop
TorchServe, and show the models' status.
"""
