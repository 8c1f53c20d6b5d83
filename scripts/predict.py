"""Label raw text with a trained model.

    $ python scripts/predict.py "what a wonderful film" "a tedious mess"
    $ python scripts/predict.py --json --file reviews.txt
    $ cat reviews.txt | python scripts/predict.py -
    $ python scripts/predict.py --explain "a tedious mess with one charming scene"   # [+word] for, [-word] against
"""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.cli import predict_main


def main(argv=None):
    return predict_main(argv)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `predict.py ... | head` ends quietly
    sys.exit(main())
