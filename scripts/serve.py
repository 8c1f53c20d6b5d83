"""Serve a trained model over HTTP (FastAPI + uvicorn): POST /predict, POST /explain, GET /health, GET /info, /docs,
and a page at / to try it.

    $ python scripts/serve.py --artifacts artifacts
    $ python scripts/serve.py --artifacts artifacts --host 0.0.0.0 --port 8080 --backend onnx
    $ python scripts/serve.py --artifacts artifacts --max-batch-size 1          # micro-batching off
    $ curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"inputs": ["great", "awful"]}'
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.serve.command import serve_main


def main(argv=None):
    return serve_main(argv)


if __name__ == "__main__":
    sys.exit(main())
