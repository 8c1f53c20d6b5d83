"""Write model.onnx into a trained model folder, so predict runs on onnxruntime without torch.

    $ python scripts/export.py --artifacts artifacts
    $ python scripts/predict.py --artifacts artifacts --backend onnx "what a wonderful film"
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.cli import export_main


def main(argv=None):
    return export_main(argv)


if __name__ == "__main__":
    sys.exit(main())
