"""Train one tedigan stage: ``accelerate launch pipelines/train_stage.py --stage inversion --config ...``.

The script accelerate launches (``tedigan launch`` keeps a stage's one-line error and exit status through
the launcher); the same as ``tedigan train`` (:mod:`tedigan.commands.train`), whose ``--help`` lists every
option.
"""

from tedigan.commands import shim

if __name__ == "__main__":
    shim("train")
