"""The engines on Ray Serve (``engines.backend = "ray"``): ``deployments`` (the Serve app),
``cluster`` (connect, deploy), ``clients`` (the call core's engine clients over handles) and
``worker`` (what a call worker loads). Needs the ``ray`` extra: ``pip install -e .[ray]``."""
