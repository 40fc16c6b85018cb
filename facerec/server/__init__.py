"""``facerec serve``: the workspace over HTTP (FastAPI under uvicorn), the model loaded once.

Routes are in :mod:`.app`, shared state and the forget jobs in :mod:`.state`, the body-size cap in
:mod:`.limits`. ``/docs`` is the OpenAPI page; ``/openapi.json`` the schema.
"""

from __future__ import annotations

import os
import sys


def serve(workspace: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, *, detector: str = "haar",
          device: str | None = None, keyless_reads: bool = False, upload_mb: float = 16, max_images: int = 32,
          max_megapixels: float = 40,
          recognizer: str | None = None, quiet: bool = False) -> None:
    """Run the API until interrupted. The model is loaded before the port opens, so the first
    request is as fast as the others and a broken workspace fails here, not on a request."""
    import uvicorn

    from facerec.server.apikeys import read_keys
    from .app import create_app
    from .state import Engine, Limits

    engine = Engine(workspace, detector=detector, device=device, recognizer=recognizer,
                    limits=Limits(upload_bytes=int(upload_mb * (1 << 20)), images=max_images,
                                  pixels=int(max_megapixels * 1e6)))
    engine.pipeline()  # load the model (and the detector) now
    if not read_keys(engine.root):
        print(f"facerec serve: {engine.root} has no API keys; create one with `facerec keys add NAME -w "
              f"{engine.root}` (until then every request that needs a key is refused)", file=sys.stderr)
    app = create_app(engine, keyless_reads=keyless_reads)
    if not quiet:
        print(f"facerec serve: http://{host}:{port} (API page: http://{host}:{port}/docs), workspace {engine.root}, "
              f"model {engine.model_version}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info", workers=1)
