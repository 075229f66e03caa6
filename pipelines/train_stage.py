"""Train one tedigan stage: ``accelerate launch pipelines/train_stage.py --stage inversion --config ...``.

The script accelerate launches; the code lives in :mod:`tedigan.training.__main__` (also ``tedigan train`` and
``python -m tedigan.training``), whose ``--help`` lists every option.
"""

import sys

from tedigan.training.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
